"""`hookline send` events are what each provider sends: hookline accepts every one of them,
refuses them forged, and a lifecycle plan holds every delivery once plus its retries."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from hookline.errors import SignatureRejected
from hookline.providers import UNSIGNED_PROVIDERS, WebhookRequest, build_registry
from hookline.simulate.events import CATALOG, Subject, UnknownEventType, build, lifecycle
from hookline.simulate.send import plan, webhook_url
from hookline.simulate.signing import forged_secret, signature_headers, signed_body

from tests.support.signers import SECRETS

BASE_URL = "http://127.0.0.1:3000"
CASES = [(provider, kind) for provider, kinds in CATALOG.items() for kind in kinds]


def signed_request(provider: str, kind: str, secret: str) -> tuple[WebhookRequest, str]:
    rng = random.Random(1)
    event = build(provider, kind, Subject.new(rng, order_id="order-7"), rng)
    _, notification_url = webhook_url(BASE_URL, event)
    headers = {
        **event.headers,
        **signature_headers(event, secret, url=notification_url, timestamp=int(time.time())),
    }
    body = signed_body(event, secret)
    request = WebhookRequest(body, headers, dict(event.query), notification_url)
    return request, event.event_id


@pytest.mark.parametrize(("provider", "kind"), CASES)
def test_every_simulated_event_is_accepted_and_normalized(provider: str, kind: str) -> None:
    secret = SECRETS[provider][0]
    request, event_id = signed_request(provider, kind, secret)
    verifier = build_registry()[provider]
    verifier.verify(request, [secret], now=time.time(), tolerance=300)
    envelope = verifier.normalize(request, received_at=datetime.now(UTC))
    if provider in UNSIGNED_PROVIDERS:
        # Each delivery is its own event, named when it arrives: the receiver's answer says.
        assert envelope.event_id.startswith(f"{envelope.object_id}:")
    else:
        assert envelope.event_id == event_id
    assert envelope.event_type.split(".")[0] == kind.split(".")[0]
    assert envelope.object_id
    assert "${" not in request.body.decode()


@pytest.mark.parametrize("provider", ["svix", "standard"])
def test_an_unpadded_whsec_secret_signs_as_the_receiver_reads_it(provider: str) -> None:
    # The receiver accepts whsec_ secrets without base64 padding (as the SDKs do):
    # `hookline send` must sign with them too, not crash on the padding.
    secret = SECRETS[provider][0].rstrip("=")
    assert secret != SECRETS[provider][0]
    kind = next(iter(CATALOG[provider]))
    request, _ = signed_request(provider, kind, secret)
    build_registry()[provider].verify(request, [secret], now=time.time(), tolerance=300)


@pytest.mark.parametrize(
    ("provider", "kind"), [(p, k) for p, k in CASES if p not in UNSIGNED_PROVIDERS]
)
def test_forged_events_are_refused(provider: str, kind: str) -> None:
    # Khalti and Mollie sign nothing: there is no forgery to refuse, only an API to ask.
    secret = SECRETS[provider][0]
    request, _ = signed_request(provider, kind, forged_secret(secret))
    with pytest.raises(SignatureRejected):
        build_registry()[provider].verify(request, [secret], now=time.time(), tolerance=300)


def test_a_lifecycle_shares_its_payment_and_moves_forward_in_time() -> None:
    rng = random.Random(3)
    subject = Subject.new(rng, amount=1234, currency="eur", order_id="order-9")
    events = lifecycle(
        "stripe",
        ["payment_intent.created", "payment_intent.succeeded", "charge.refunded"],
        subject,
        rng,
    )
    bodies = [json.loads(e.body) for e in events]
    assert [b["type"] for b in bodies] == [
        "payment_intent.created",
        "payment_intent.succeeded",
        "charge.refunded",
    ]
    assert bodies[0]["data"]["object"]["id"] == bodies[2]["data"]["object"]["payment_intent"]
    assert [b["created"] for b in bodies] == sorted(b["created"] for b in bodies)
    assert len({b["created"] for b in bodies}) == 3
    assert bodies[1]["data"]["object"]["amount_received"] == 1234
    assert bodies[1]["data"]["object"]["currency"] == "eur"
    assert bodies[1]["data"]["object"]["metadata"] == {"order_id": "order-9"}
    assert len({e.event_id for e in events}) == 3


def test_without_an_order_the_metadata_is_null() -> None:
    rng = random.Random(4)
    body = json.loads(build("stripe", "payment_intent.succeeded", Subject.new(rng), rng).body)
    assert body["data"]["object"]["metadata"] == {"order_id": None}


def test_plan_sends_each_event_once_plus_its_duplicates() -> None:
    rng = random.Random(5)
    cycles = [
        lifecycle("square", ["payment.created", "payment.updated"], Subject.new(rng), rng)
        for _ in range(3)
    ]
    ordered = plan(cycles, duplicates=2)
    assert [e.event_id for e in ordered[:3]] == [cycles[0][0].event_id] * 3
    shuffled = plan(cycles, duplicates=2, shuffle=True, rng=random.Random(6))
    assert Counter(e.event_id for e in shuffled) == Counter(e.event_id for e in ordered)
    assert [e.event_id for e in shuffled] != [e.event_id for e in ordered]


def test_an_unknown_event_type_names_the_known_ones() -> None:
    rng = random.Random(7)
    with pytest.raises(UnknownEventType, match=r"payment_intent\.succeeded"):
        build("stripe", "payment_intent.exploded", Subject.new(rng), rng)
