"""Mollie: the Payments API webhook, `id=tr_...` in a form body, confirmed by a GET.

Mollie posts `id=<payment id>` (application/x-www-form-urlencoded) to the
payment's webhookUrl on every status change, and signs nothing: the id is the
whole message, so anyone who can reach the URL can post one.

verify() has nothing to check: no signature exists. The `mollie` entry of the
webhook secret is the API key (`live_...` / `test_...`) the consumer uses to
GET /v2/payments/{id}; everything applied comes from that answer, which a
forged post cannot change. A forged id Mollie does not know ends `ignored`
after one API call; a flood costs one call per post, so put a rate limit (AWS
WAF on the API, or the stage's throttling) in front of /webhooks/mollie.
normalize() refuses a body that is not one Mollie payment id (`tr_` and
letters or digits) with MalformedEvent (400): the Orders API's `ord_` ids and
anything else are not payments this handler can fetch.

- identity: `{id}:{received_at}` (UTC, with microseconds). Mollie posts the
  same body on every change, so the body cannot tell two changes apart: each
  delivery is its own event, and each fetches the current state;
- object: the payment id, so the deliveries about one payment apply in order.
- the envelope's body is `{"id": ...}` (the consumer reads JSON).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import parse_qsl

from hookline.envelope import Envelope
from hookline.errors import MalformedEvent
from hookline.providers.base import ApiRead, ProviderApi, WebhookRequest, per_delivery_event_id

# GET /v2/payments/{id}, `Authorization: Bearer <the mollie entry's first secret>`.
API = ProviderApi("mollie", "https://api.mollie.com", "mollie")
PAYMENT_ID = re.compile(r"tr_[A-Za-z0-9]{1,64}")
# Mollie sends one field; a few more are tolerated, a flood of them is not parsed.
MAX_FIELDS = 10


def payment_id_of(body: bytes) -> str:
    try:
        pairs = parse_qsl(body.decode("utf-8").strip(), max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise MalformedEvent("the Mollie body is not a form") from None
    ids = [value for name, value in pairs if name == "id"]
    if len(ids) != 1 or not PAYMENT_ID.fullmatch(ids[0]):
        raise MalformedEvent("the Mollie body holds no single payment id (tr_...)")
    return ids[0]


class Mollie:
    name = "mollie"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        """Nothing is signed (see the module docstring): the API answer is the only truth."""

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        payment_id = payment_id_of(request.body)
        return Envelope(
            provider=self.name,
            event_id=per_delivery_event_id(payment_id, received_at),
            event_type="payment",
            object_id=payment_id,
            occurred_at=None,
            received_at=received_at,
            headers={},
            body=json.dumps({"id": payment_id}),
        )


def payment_read(payment_id: str) -> ApiRead:
    """GET /v2/payments/{id}."""
    if not PAYMENT_ID.fullmatch(payment_id):
        raise MalformedEvent("the Mollie payment id is not a payment id")
    return ApiRead(("v2", "payments", payment_id))
