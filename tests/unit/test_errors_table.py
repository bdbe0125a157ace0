"""hookline.errors is the one table of what each error means, and the receiver answers by it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hookline.deploy
import hookline.deploy_migrations
import hookline.local.stack
import hookline.remote
import hookline.template
import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from hookline import errors
from hookline.consumer.batch import is_transient
from hookline.errors import HooklineError, RejectReason
from hookline.metric_names import Metric
from hookline.receiver.intake import Intake

from tests.support.apigw import webhook_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.receiver_errors import raised_by_the_receiver
from tests.support.signers import sign
from tests.support.stack import Stack, load_function

# The hookline.* modules imported above define error classes too: imported, the table
# below is the same whichever tests run first.
RECEIVER = load_function("receiver")

# docs/cli.md and hookline.errors' docstring: the only exit codes the CLI uses.
EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 130}
HTTP_STATUSES = {400, 401, 404, 409, 413, 500, 503}
# WebhooksRejected's reason dimension values: dashboards and runbooks name them.
REJECTIONS = {"unknown_provider", "too_large", "signature", "malformed"}


def every_error_class() -> Iterator[type[HooklineError]]:
    pending: list[type[HooklineError]] = [HooklineError]
    while pending:
        found = pending.pop()
        yield found
        pending.extend(found.__subclasses__())


ERROR_CLASSES = sorted(every_error_class(), key=lambda kind: kind.__name__)


def instance(kind: type[HooklineError]) -> HooklineError:
    """One error of `kind`, built as the code that raises it does."""
    if issubclass(kind, errors.SignatureRejected):
        return kind(RejectReason.MISMATCH)
    if issubclass(kind, errors.InvalidSecret):
        return kind({"stripe": "secret 1 is empty, blank or not a string"})
    if issubclass(kind, hookline.local.stack.StackAlreadyRunning):
        return kind(Path(".hookline"), 1234, "http://127.0.0.1:3000")
    return kind(f"what went wrong, as {kind.__name__} says it")


@pytest.mark.parametrize("kind", ERROR_CLASSES, ids=lambda kind: kind.__name__)
def test_every_error_class_has_a_coherent_row(kind: type[HooklineError]) -> None:
    assert kind.http_status in HTTP_STATUSES
    # A dependency's fault, and only that, asks the provider to retry (503, Retry-After).
    assert kind.transient == (kind.http_status == 503)
    assert kind.exit_code in EXIT_CODES
    assert kind.metric is None or isinstance(kind.metric, Metric)
    assert kind.answer_code.isidentifier()
    assert kind.answer_code.islower()
    assert kind.log_message
    if kind.rejection is not None:
        assert kind.rejection in REJECTIONS
        assert 400 <= kind.http_status < 500
    if kind.transient:
        assert kind.exit_code in {errors.EXIT_UNAVAILABLE, errors.EXIT_CONFIGURATION}
        # The cause of an outage is logged, never answered.
        assert kind.answer_message is not None
    assert errors.error_class(kind.__name__) is kind


def test_error_class_of_an_unknown_name_is_the_base() -> None:
    assert errors.error_class("NoSuchError") is HooklineError


def test_the_operator_errors_exit_as_documented() -> None:
    assert (errors.InvalidRequest.exit_code, errors.InvalidRequest.http_status) == (2, 400)
    assert (errors.NotFound.exit_code, errors.NotFound.http_status) == (4, 404)
    assert (errors.OperatorRefused.exit_code, errors.OperatorRefused.http_status) == (6, 409)


# What providers and outside test suites see today (DESIGN.md's HTTP contract), and the
# metric alarms and dashboards count: a change to the table must not change these.
Counted = set[tuple[str, str, str]]
REJECTED, BY_STRIPE = "WebhooksRejected", ("provider", "stripe")
RECEIVER_ANSWERS: dict[type[HooklineError], tuple[int, str, Counted]] = {
    errors.UnknownProvider: (404, "unknown_provider", {(REJECTED, "reason", "unknown_provider")}),
    errors.ProviderDisabled: (404, "unknown_provider", {(REJECTED, "reason", "unknown_provider")}),
    errors.PayloadTooLarge: (413, "payload_too_large", {(REJECTED, "reason", "too_large")}),
    errors.SignatureRejected: (
        401,
        "invalid_signature",
        {(REJECTED, "reason", "signature"), ("SignatureRejected", *BY_STRIPE)},
    ),
    errors.MalformedEvent: (400, "malformed_event", {(REJECTED, "reason", "malformed")}),
    errors.ServiceUnavailable: (503, "unavailable", {("ConfigurationErrors", *BY_STRIPE)}),
    errors.QueueUnavailable: (503, "unavailable", {("EnqueueFailed", *BY_STRIPE)}),
    errors.SecretsUnavailable: (503, "unavailable", {("SecretsUnavailable", *BY_STRIPE)}),
    errors.ConfigurationError: (503, "unavailable", {("ConfigurationErrors", *BY_STRIPE)}),
    errors.InvalidSecret: (503, "unavailable", {("ConfigurationErrors", *BY_STRIPE)}),
}


def emitted(printed: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """(metric, dimensions) of each EMF record printed; Powertools' own ColdStart aside."""
    found = set()
    for line in printed.splitlines():
        if '"_aws"' not in line:
            continue
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                for names in directive["Dimensions"]:
                    if metric["Name"] != "ColdStart":
                        dimensions = frozenset((name, record[name]) for name in names)
                        found.add((metric["Name"], dimensions))
    return found


def answer_to(
    error: HooklineError, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The receiver's answer to a genuine Stripe webhook whose intake raised `error`."""

    def accept(*_: Any) -> Any:
        raise error

    monkeypatch.setattr(Intake, "accept", accept)
    answer = RECEIVER.lambda_handler(
        webhook_event("stripe", sign("stripe").request), FakeLambdaContext()
    )
    return answer["statusCode"], json.loads(answer["body"]), answer.get("headers") or {}


@pytest.mark.parametrize("kind", ERROR_CLASSES, ids=lambda kind: kind.__name__)
def test_the_receiver_answers_each_error_as_the_table_says(
    stack: Stack,
    kind: type[HooklineError],
    monkeypatch: pytest.MonkeyPatch,
    output: pytest.CaptureFixture[str],
) -> None:
    error = instance(kind)
    if kind.http_status == 500:
        # Unmapped: a bug, which surfaces as a Lambda error (ReceiverErrorsAlarm).
        with pytest.raises(kind):
            answer_to(error, monkeypatch)
        return
    status, body, headers = answer_to(error, monkeypatch)
    assert status == kind.http_status
    assert body == {"error": kind.answer_code, "message": kind.answer_message or str(error)}
    assert ("Retry-After" in headers) == kind.transient
    service = {("service", "hookline")}
    expected = set()
    if kind.rejection is not None:
        expected |= {("WebhooksRejected", frozenset(service))}
        expected |= {("WebhooksRejected", frozenset(service | {("reason", kind.rejection)}))}
    if kind.metric is not None:
        expected |= {(kind.metric.value, frozenset(service))}
        expected |= {(kind.metric.value, frozenset(service | {("provider", "stripe")}))}
    assert emitted(output.readouterr().out) == expected
    if kind in RECEIVER_ANSWERS:
        code_status, code, metrics = RECEIVER_ANSWERS[kind]
        assert (status, body["error"]) == (code_status, code)
        for name, dimension, value in metrics:
            assert (name, frozenset(service | {(dimension, value)})) in expected


def test_the_pinned_answers_cover_every_error_the_receiver_raises() -> None:
    raised = raised_by_the_receiver()
    assert errors.SignatureRejected in raised  # the scan finds what it should
    assert raised <= set(RECEIVER_ANSWERS), raised - set(RECEIVER_ANSWERS)


@pytest.mark.parametrize("kind", ERROR_CLASSES, ids=lambda kind: kind.__name__)
def test_the_consumer_retries_what_the_table_calls_transient(kind: type[HooklineError]) -> None:
    assert is_transient(instance(kind)) == kind.transient


def test_the_consumer_s_other_transient_and_own_failures() -> None:
    # The same event in flight in another invocation: it will be answered, not failed.
    assert is_transient(IdempotencyAlreadyInProgressError("in progress"))
    # Anything that is not a hookline error is the event's own (a handler's bug).
    assert not is_transient(KeyError("amount"))
