"""The local stack takes its wiring from template.yaml, and follows it when it changes."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from hookline import template
from hookline.errors import ConfigurationError
from hookline.local.stack import STACK_NAME, LocalOptions, database_schema
from hookline.local.wiring import Route, WiringError, load, schedule_seconds
from hookline.schema import DEFAULT_SCHEMA, schema_name

ROOT = Path(__file__).resolve().parents[3]


def wiring_of(document: dict[str, Any], parameters: dict[str, str] | None = None) -> Any:
    refs = {name: f"ref:{name}" for name in document["Resources"]}
    attributes = {(name, "Arn"): f"arn:{name}" for name in document["Resources"]}
    resolver = template.Resolver(document, parameters=parameters or {}, refs=refs)
    resolver.attributes = attributes
    return load(document, resolver, ROOT)


def test_functions_routes_and_sources_come_from_the_template() -> None:
    wiring = wiring_of(template.load())
    receiver = wiring.functions["ReceiverFunction"]
    assert receiver.handler == "app.lambda_handler"
    assert receiver.code_dir == ROOT / "functions" / "receiver"
    assert receiver.runtime == "python3.13"
    assert receiver.layers == (ROOT / "layers" / "dependencies", ROOT / "shared")
    assert receiver.environment["QUEUE_URL"] == "ref:EventsQueue"
    # The service dimension is the stack's name (!Ref AWS::StackName).
    assert receiver.environment["POWERTOOLS_SERVICE_NAME"] == STACK_NAME
    assert {(r.method, r.path, r.function) for r in wiring.routes} == {
        ("POST", "/webhooks/{provider}", "ReceiverFunction"),
        # Providers that sign nothing: routes of their own, throttled apart.
        ("POST", "/webhooks/khalti", "ReceiverFunction"),
        ("POST", "/webhooks/mollie", "ReceiverFunction"),
        ("GET", "/health", "ReceiverFunction"),
    }
    (source,) = wiring.queue_sources
    assert (source.function, source.queue, source.batch_size) == (
        "ConsumerFunction",
        "EventsQueue",
        10,
    )
    assert source.maximum_concurrency == 5
    assert source.report_batch_item_failures


def test_a_template_change_changes_the_local_stack() -> None:
    document = copy.deepcopy(template.load())
    receiver = document["Resources"]["ReceiverFunction"]["Properties"]
    receiver["Events"]["Webhook"]["Properties"]["Path"] = "/hooks/{provider}"
    receiver["Handler"] = "app.other_handler"
    receiver["Environment"]["Variables"]["EXTRA"] = "on"
    consumer = document["Resources"]["ConsumerFunction"]["Properties"]
    consumer["Events"]["Queue"]["Properties"]["BatchSize"] = 3

    wiring = wiring_of(document, {"ConsumerMaxConcurrency": "7"})

    assert wiring.route_for("POST", "/hooks/stripe") is not None
    assert wiring.route_for("POST", "/webhooks/stripe") is None
    assert wiring.functions["ReceiverFunction"].handler == "app.other_handler"
    assert wiring.functions["ReceiverFunction"].environment["EXTRA"] == "on"
    assert wiring.queue_sources[0].batch_size == 3
    assert wiring.queue_sources[0].maximum_concurrency == 7


def test_schedules_are_read_and_timed() -> None:
    document = copy.deepcopy(template.load())
    document["Resources"]["ConsumerFunction"]["Properties"]["Events"]["Tick"] = {
        "Type": "Schedule",
        "Properties": {"Schedule": "rate(5 minutes)", "Input": '{"action": "reconcile"}'},
    }
    schedules = {s.function: s for s in wiring_of(document).schedules}
    # The template's own: the reconciler, on the ReconcileSchedule parameter's default.
    assert schedules["ReconcilerFunction"].interval_seconds == 300
    assert schedules["ReconcilerFunction"].input is None
    added = schedules["ConsumerFunction"]
    assert (added.interval_seconds, added.enabled) == (300, True)
    assert added.input == '{"action": "reconcile"}'


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86400),
    ],
)
def test_rate_expressions(expression: str, seconds: int) -> None:
    assert schedule_seconds(expression) == seconds


def test_cron_is_refused_with_a_clear_error() -> None:
    with pytest.raises(WiringError, match="rate"):
        schedule_seconds("cron(0 12 * * ? *)")


def test_an_event_source_the_local_stack_cannot_run_is_refused() -> None:
    document = copy.deepcopy(template.load())
    document["Resources"]["ConsumerFunction"]["Properties"]["Events"]["Stream"] = {
        "Type": "Kinesis",
        "Properties": {"Stream": "arn:aws:kinesis:us-east-1:1:stream/x"},
    }
    with pytest.raises(WiringError, match="Kinesis"):
        wiring_of(document)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/webhooks/stripe", {"provider": "stripe"}),
        ("post", "/webhooks/stripe", {"provider": "stripe"}),
        ("GET", "/webhooks/stripe", None),
        ("POST", "/webhooks/stripe/extra", None),
        ("POST", "/webhooks/", None),
    ],
)
def test_route_matching(method: str, path: str, expected: dict[str, str] | None) -> None:
    route = Route("POST", "/webhooks/{provider}", "ReceiverFunction", "2.0")
    assert route.match(method, path) == expected


def test_greedy_path_parameter() -> None:
    route = Route("ANY", "/files/{path+}", "F", "2.0")
    assert route.match("GET", "/files/a/b/c") == {"path": "a/b/c"}


def test_the_schema_parameter_reaches_every_function_that_talks_to_postgresql() -> None:
    """DatabaseSchema: the template's default is the code's, and the local stack passes
    --schema (or an override) to the functions exactly as a deploy would."""
    document = template.load()
    parameter = document["Parameters"]["DatabaseSchema"]
    assert parameter["Default"] == DEFAULT_SCHEMA
    for name in ("hookline", "hookline_staging", "_x", "a" * 56, "Hookline", "1x", "a" * 57, "a-b"):
        allowed = re.fullmatch(parameter["AllowedPattern"], name) is not None
        try:
            schema_name(name)
            valid = True
        except ConfigurationError:
            valid = False
        assert allowed == valid, name

    for given, overrides, expected in (
        (None, {}, "hookline"),
        ("shop_a", {}, "shop_a"),
        (None, {"DatabaseSchema": "shop_b"}, "shop_b"),
    ):
        options = LocalOptions(Path(), Path(), Path(), schema=given, parameters=overrides)
        chosen = database_schema(options, document)
        assert chosen == expected
        wiring = wiring_of(document, {"DatabaseSchema": chosen})
        for function in ("ConsumerFunction", "ReconcilerFunction"):
            assert wiring.functions[function].environment["DATABASE_SCHEMA"] == expected


def test_a_schema_given_twice_differently_is_refused() -> None:
    options = LocalOptions(
        Path(), Path(), Path(), schema="shop_a", parameters={"DatabaseSchema": "shop_b"}
    )
    with pytest.raises(ConfigurationError, match="disagree"):
        database_schema(options, template.load())
