"""The receiver end to end in-process: real handler, real boto3, moto SQS and Secrets Manager."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from hookline.providers import PROVIDER_NAMES
from hookline.receiver import api
from hookline.receiver.api import intake

from tests.support import samples
from tests.support.apigw import http_event, webhook_event
from tests.support.lambda_context import FakeLambdaContext
from tests.support.signers import FORGED_SECRETS, SECRETS, Signed
from tests.support.signers import sign as sign_at
from tests.support.stack import ROOT, Stack, default_secret_document, load_function

RECEIVER = load_function("receiver")
# They sign nothing: any request is accepted as a thin event the consumer confirms with
# the provider's API, so a forged one is queued too, and nothing it says is applied.
UNSIGNED = ("khalti", "mollie")
# Each delivery is its own event, named by its time of receipt (to the microsecond), so
# its id is not known before it is answered and a second post is a second event.
PER_DELIVERY = ("khalti", "mollie")


def sign(provider: str, **kwargs: Any) -> Signed:
    """Signed now, as the provider would: the receiver checks timestamps against its clock."""
    return sign_at(provider, timestamp=int(time.time()), **kwargs)


def invoke(event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    answer = RECEIVER.lambda_handler(event, FakeLambdaContext())
    return answer["statusCode"], json.loads(answer["body"]), answer.get("headers", {})


def post(provider: str, **sign_kwargs: Any) -> tuple[int, dict[str, Any]]:
    signed = sign(provider, **sign_kwargs)
    status, body, _ = invoke(webhook_event(provider, signed.request))
    return status, body


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_genuine_event_is_queued_once_with_the_designed_envelope(
    stack: Stack, provider: str
) -> None:
    signed = sign(provider)
    status, body, _ = invoke(webhook_event(provider, signed.request))

    if provider in PER_DELIVERY:
        assert (status, body["received"]) == (200, True)
        assert body["event_id"].startswith(f"{signed.object_id}:")
        signed = replace(signed, event_id=body["event_id"])
    assert (status, body) == (200, {"received": True, "event_id": signed.event_id})
    [message] = stack.messages()
    envelope = json.loads(message["Body"])
    assert set(envelope) == {
        "provider",
        "event_id",
        "event_type",
        "object_id",
        "occurred_at",
        "received_at",
        "headers",
        "body",
    }
    assert envelope["provider"] == provider
    assert envelope["event_id"] == signed.event_id
    assert envelope["event_type"] == signed.event_type
    assert envelope["object_id"] == signed.object_id
    assert envelope["body"] == signed.queued_body
    assert not any("signature" in name or "hmac" in name for name in envelope["headers"])
    attributes = message["Attributes"]
    assert (
        attributes["MessageDeduplicationId"]
        == hashlib.sha256(f"{provider}\x00{signed.event_id}".encode()).hexdigest()
    )
    assert (
        attributes["MessageGroupId"]
        == f"{provider}:" + hashlib.sha256(f"{provider}\x00{signed.object_id}".encode()).hexdigest()
    )


@pytest.mark.parametrize("provider", [p for p in PROVIDER_NAMES if p not in PER_DELIVERY])
def test_same_event_posted_twice_leaves_one_message(stack: Stack, provider: str) -> None:
    first = post(provider)
    second = post(provider)
    assert first == second
    assert first[0] == 200
    assert len(stack.messages()) == 1


@pytest.mark.parametrize("provider", PER_DELIVERY)
def test_each_delivery_of_a_thin_callback_is_queued_in_its_payments_group(
    stack: Stack, provider: str
) -> None:
    first, second = post(provider), post(provider)
    assert first[0] == second[0] == 200
    assert first[1]["event_id"] != second[1]["event_id"]
    messages = stack.messages()
    assert len(messages) == 2
    assert len({m["Attributes"]["MessageGroupId"] for m in messages}) == 1


def test_distinct_events_each_get_a_message(stack: Stack) -> None:
    for number in range(5):
        body = samples.encode(samples.stripe_event(event_id=f"evt_{number}"))
        assert post("stripe", body=body)[0] == 200
    event_ids = sorted(json.loads(m["Body"])["event_id"] for m in stack.messages())
    assert event_ids == [f"evt_{n}" for n in range(5)]


def test_events_about_one_object_share_a_group_and_others_do_not(stack: Stack) -> None:
    for event_id, payment in (("evt_a", "pi_1"), ("evt_b", "pi_1"), ("evt_c", "pi_2")):
        payload = samples.stripe_event(event_id=event_id)
        payload["data"]["object"]["id"] = payment
        assert post("stripe", body=samples.encode(payload))[0] == 200
    groups = {
        json.loads(m["Body"])["event_id"]: m["Attributes"]["MessageGroupId"]
        for m in stack.messages()
    }
    assert groups["evt_a"] == groups["evt_b"] != groups["evt_c"]


@pytest.mark.parametrize("provider", [p for p in PROVIDER_NAMES if p not in UNSIGNED])
def test_forged_request_is_refused_and_nothing_queued(stack: Stack, provider: str) -> None:
    status, body = post(provider, secret=FORGED_SECRETS[provider])
    assert status == 401
    assert body["error"] == "invalid_signature"
    assert stack.messages() == []


def test_unknown_provider_is_404(stack: Stack) -> None:
    signed = sign("stripe")
    status, body, _ = invoke(webhook_event("paypal", signed.request))
    assert (status, body["error"]) == (404, "unknown_provider")
    assert stack.messages() == []


def test_provider_without_a_secret_is_disabled(stack: Stack) -> None:
    document = {p: list(s) for p, s in SECRETS.items() if p != "github"}
    stack.put_secret(document)
    intake.cache_clear()
    assert post("github")[0] == 404
    assert post("stripe")[0] == 200


def test_sqs_failure_is_503_and_claims_nothing(stack: Stack) -> None:
    stack.sqs.delete_queue(QueueUrl=stack.queue_url)
    signed = sign("stripe")
    status, body, headers = invoke(webhook_event("stripe", signed.request))
    assert status == 503
    assert "received" not in body
    assert headers.get("Retry-After") == "30"
    assert stack.messages(stack.dlq_url) == []


def test_secrets_unavailable_is_503(stack: Stack) -> None:
    stack.secretsmanager.delete_secret(SecretId=stack.secret_name, ForceDeleteWithoutRecovery=True)
    assert post("stripe")[0] == 503
    assert stack.messages() == []


def test_secret_entry_of_the_wrong_shape_is_503_not_accepted(stack: Stack) -> None:
    stack.put_secret({"stripe": SECRETS["stripe"][0]})  # a string, not a list
    intake.cache_clear()
    assert post("stripe")[0] == 503


# What anyone can sign with when a secret is empty or blank.
KEYLESS_SECRETS = {
    **{provider: " " for provider in PROVIDER_NAMES},
    "svix": "whsec_",
    "standard": "whsec_",
}


def configure(stack: Stack, **entries: object) -> None:
    stack.put_secret({**default_secret_document(), **entries})
    intake.cache_clear()


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_a_blank_or_keyless_secret_is_503_never_an_empty_key(
    stack: Stack, provider: str, output: pytest.CaptureFixture[str]
) -> None:
    keyless = KEYLESS_SECRETS[provider]
    configure(stack, **{provider: [keyless]})
    forged = sign(provider, secret=keyless)
    status, body, headers = invoke(webhook_event(provider, forged.request))
    assert (status, body["error"], headers.get("Retry-After")) == (503, "unavailable", "30")
    assert stack.messages() == []
    metrics = _emitted_metrics(output.readouterr().out)
    assert ("ConfigurationErrors", {"service": "hookline", "provider": provider}) in metrics


def test_a_blank_older_secret_is_503_even_for_a_genuine_request(stack: Stack) -> None:
    configure(stack, stripe=[SECRETS["stripe"][0], " "])
    assert post("stripe")[0] == 503
    assert stack.messages() == []


UNUSABLE_ENTRIES = [
    ("stripe", SECRETS["stripe"][0]),  # a string, not a list
    ("stripe", [" "]),
    ("github", []),
    ("square", None),
    ("svix", ["whsec_"]),
    ("standard", ["whsec_not base64!"]),
    ("shopify", [SECRETS["shopify"][0], ""]),
    ("adyen", ["not-a-hex-key"]),
    ("adyen", [SECRETS["adyen"][0] + "F"]),  # an odd number of hex digits
    ("mollie", [" "]),
]


@pytest.mark.parametrize(("provider", "entry"), UNUSABLE_ENTRIES)
def test_health_names_the_provider_whose_secret_is_unusable(
    stack: Stack, provider: str, entry: object
) -> None:
    configure(stack, **{provider: entry})
    status, body, _ = invoke(http_event("GET", "/health"))
    assert (status, body) == (
        503,
        {"status": "unavailable", "checks": {"secrets": f"invalid: {provider}", "queue": "ok"}},
    )


def test_health_names_every_unusable_provider_and_no_value(stack: Stack) -> None:
    configure(stack, stripe="whsec_do_not_print_me", svix=["whsec_"])
    status, body, _ = invoke(http_event("GET", "/health"))
    assert (status, body["checks"]["secrets"]) == (503, "invalid: stripe, svix")
    assert "do_not_print_me" not in json.dumps(body)


def test_one_unusable_secret_leaves_the_other_providers_working(stack: Stack) -> None:
    configure(stack, svix=["whsec_"])
    assert post("svix")[0] == 503
    assert post("stripe")[0] == 200


def test_an_unpadded_whsec_secret_is_accepted(stack: Stack) -> None:
    padded = SECRETS["svix"][0]
    assert padded.endswith("=")
    configure(stack, svix=[padded.rstrip("=")])
    status, body = post("svix", secret=padded)  # the same key: only the text differs
    assert (status, body["received"]) == (200, True)


def test_a_svix_event_with_plain_webhook_headers_is_accepted(stack: Stack) -> None:
    signed = sign("svix")
    headers = {
        name.replace("svix-", "webhook-"): value for name, value in signed.request.headers.items()
    }
    event = webhook_event("svix", replace(signed.request, headers=headers))
    status, body, _ = invoke(event)
    assert (status, body) == (200, {"received": True, "event_id": signed.event_id})
    [message] = stack.messages()
    assert json.loads(message["Body"])["event_id"] == signed.event_id


@pytest.fixture
def aws_calls(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every AWS operation the receiver's clients call, counted by botocore's event hook."""
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    session = boto3.session.Session()
    session.events.register("before-call", count)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    intake.cache_clear()  # rebuilt on the counting session
    return calls


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_health_flood_costs_no_aws_calls(
    stack: Stack, aws_calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(api.health_cache, "clock", clock)
    for _ in range(20):
        assert invoke(http_event("GET", "/health"))[0] == 200
    assert aws_calls == {"GetSecretValue": 1, "GetQueueAttributes": 1}

    clock.now += api.HEALTH_CACHE_SECONDS
    assert invoke(http_event("GET", "/health"))[0] == 200
    # The secret itself is Powertools' to cache (60 s); the queue is asked again.
    assert aws_calls == {"GetSecretValue": 1, "GetQueueAttributes": 2}


def test_a_forged_flood_while_the_secret_is_unreadable_costs_one_call(
    stack: Stack, aws_calls: Counter[str]
) -> None:
    stack.secretsmanager.delete_secret(SecretId=stack.secret_name, ForceDeleteWithoutRecovery=True)
    for _ in range(20):
        assert post("stripe", secret=FORGED_SECRETS["stripe"])[0] == 503
    assert aws_calls["GetSecretValue"] == 1
    assert stack.messages() == []


def test_missing_environment_is_503(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUEUE_URL")
    intake.cache_clear()
    assert post("stripe")[0] == 503


def test_body_over_the_limit_is_413(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    intake.cache_clear()
    payload = samples.stripe_event()
    payload["data"]["object"]["description"] = "x" * 4096
    assert post("stripe", body=samples.encode(payload))[0] == 413
    assert post("stripe")[0] == 200  # a normal event still passes


def test_base64_encoded_body_is_verified_on_the_decoded_bytes(stack: Stack) -> None:
    signed = sign("shopify")
    status, _, _ = invoke(webhook_event("shopify", signed.request, base64_encoded=True))
    assert status == 200
    [message] = stack.messages()
    assert json.loads(message["Body"])["body"] == signed.request.body.decode()


def test_non_utf8_body_with_valid_signature_is_400_and_not_queued(stack: Stack) -> None:
    signed = sign("github", body=b'{"action":"\xff"}')
    status, body, _ = invoke(webhook_event("github", signed.request, base64_encoded=True))
    assert (status, body["error"]) == (400, "malformed_event")
    assert stack.messages() == []


def test_invalid_base64_body_is_400(stack: Stack) -> None:
    event = webhook_event("github", sign("github").request)
    event["isBase64Encoded"] = True
    event["body"] = "%%%not base64%%%"
    assert invoke(event)[0] == 400


def test_signed_event_without_an_event_id_is_400(stack: Stack) -> None:
    payload = samples.stripe_event()
    del payload["id"]
    status, body = post("stripe", body=samples.encode(payload))
    assert (status, body["error"]) == (400, "malformed_event")
    assert stack.messages() == []


def test_signed_body_nested_deeper_than_can_be_read_is_400_not_500(stack: Stack) -> None:
    payload = samples.stripe_event()
    payload["data"]["object"]["metadata"] = "NESTED"
    depth = 100_000
    body = samples.encode(payload).replace(b'"NESTED"', b"[" * depth + b"]" * depth)
    status, answer = post("stripe", body=body)
    assert (status, answer["error"]) == (400, "malformed_event")
    assert stack.messages() == []


@pytest.mark.parametrize("unstorable", ["\x00", "\ud800"], ids=["nul", "lone-surrogate"])
def test_signed_event_whose_id_postgresql_cannot_store_is_400(
    stack: Stack, unstorable: str
) -> None:
    # The ledger keys on the id, and PostgreSQL text cannot hold NUL or a lone
    # surrogate: it could never be recorded, so it is refused here, not lost downstream.
    body = json.dumps({**samples.stripe_event(), "id": f"evt_{unstorable}x"}).encode()
    assert b"\\u" in body
    status, answer = post("stripe", body=body)
    assert (status, answer["error"]) == (400, "malformed_event")
    assert stack.messages() == []


def test_square_url_is_derived_from_the_request_when_not_configured(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQUARE_NOTIFICATION_URL", "")
    intake.cache_clear()
    body = samples.encode(samples.square_event())
    derived_url = "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/square"
    key = SECRETS["square"][0].encode()
    import hmac

    signature = base64.b64encode(
        hmac.new(key, derived_url.encode() + body, hashlib.sha256).digest()
    ).decode()
    event = http_event(
        "POST",
        "/webhooks/square",
        body=body,
        headers={"x-square-hmacsha256-signature": signature},
        route_key="POST /webhooks/{provider}",
        path_parameters={"provider": "square"},
    )
    assert invoke(event)[0] == 200


def test_health_is_200_when_queue_and_secret_answer(stack: Stack) -> None:
    status, body, _ = invoke(http_event("GET", "/health"))
    assert (status, body) == (200, {"status": "ok", "checks": {"secrets": "ok", "queue": "ok"}})


def test_health_is_503_when_the_queue_is_gone(stack: Stack) -> None:
    stack.sqs.delete_queue(QueueUrl=stack.queue_url)
    status, body, _ = invoke(http_event("GET", "/health"))
    assert status == 503
    assert body["checks"] == {"secrets": "ok", "queue": "unavailable"}


def test_health_is_503_when_the_secret_is_gone(stack: Stack) -> None:
    stack.secretsmanager.delete_secret(SecretId=stack.secret_name, ForceDeleteWithoutRecovery=True)
    status, body, _ = invoke(http_event("GET", "/health"))
    assert status == 503
    assert body["checks"]["secrets"] == "unavailable"


def test_logs_never_contain_secrets_signatures_or_bodies(
    stack: Stack, output: pytest.CaptureFixture[str]
) -> None:
    genuine = sign("stripe")
    forged = sign("stripe", secret="whsec_attacker_fake")
    invoke(webhook_event("stripe", genuine.request))
    invoke(webhook_event("stripe", forged.request))
    printed = output.readouterr().out
    assert "webhook queued" in printed
    assert "signature rejected" in printed
    for secret in SECRETS["stripe"]:
        assert secret not in printed
    for request in (genuine.request, forged.request):
        assert request.headers["stripe-signature"] not in printed
        assert request.headers["stripe-signature"].split("v1=")[1] not in printed
    assert 'pi_3NG8Dt2eZvKYlo2C0ABCDEFG","object"' not in printed  # no raw body
    assert "order-1001" not in printed


def test_logs_carry_the_event_id_as_correlation_id(
    stack: Stack, output: pytest.CaptureFixture[str]
) -> None:
    signed = sign("stripe")
    invoke(webhook_event("stripe", signed.request))
    records = [
        json.loads(line)
        for line in output.readouterr().out.splitlines()
        if line.startswith('{"level"')
    ]
    [queued] = [r for r in records if r["message"] == "webhook queued"]
    assert queued["correlation_id"] == signed.event_id
    assert queued["provider"] == "stripe"


def _emitted_metrics(output: str) -> list[tuple[str, dict[str, str]]]:
    found = []
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                dimensions = {
                    name: record[name] for names in directive["Dimensions"] for name in names
                }
                found.append((metric["Name"], dimensions))
    return found


def test_metrics_count_accepted_and_rejected_by_reason_and_provider(
    stack: Stack, output: pytest.CaptureFixture[str]
) -> None:
    post("stripe")
    post("github", secret=FORGED_SECRETS["github"])
    invoke(webhook_event("nope", sign("stripe").request))
    metrics = _emitted_metrics(output.readouterr().out)
    assert ("WebhooksAccepted", {"service": "hookline"}) in metrics
    assert ("WebhooksAccepted", {"service": "hookline", "provider": "stripe"}) in metrics
    assert ("SignatureRejected", {"service": "hookline"}) in metrics  # what the alarm watches
    assert ("SignatureRejected", {"service": "hookline", "provider": "github"}) in metrics
    assert ("WebhooksRejected", {"service": "hookline", "reason": "unknown_provider"}) in metrics
    # An attacker-chosen path never becomes a dimension value.
    assert not any(d.get("provider") == "nope" for _, d in metrics)


def test_enqueue_failures_are_counted(stack: Stack, output: pytest.CaptureFixture[str]) -> None:
    stack.sqs.delete_queue(QueueUrl=stack.queue_url)
    post("stripe")
    assert ("EnqueueFailed", {"service": "hookline"}) in _emitted_metrics(output.readouterr().out)


@pytest.mark.parametrize(
    "event_file", sorted((ROOT / "events").glob("receiver-*.json")), ids=lambda p: p.name
)
def test_sample_events_for_sam_local_invoke_are_answered_200(
    stack: Stack, event_file: Path
) -> None:
    # The events/ files are signed with config/local-secrets.example.json.
    stack.put_secret(json.loads((ROOT / "config" / "local-secrets.example.json").read_text()))
    intake.cache_clear()
    status, body, _ = invoke(json.loads(event_file.read_text()))
    assert status == 200, body
