"""Khalti ePayment: the return_url callback, forwarded by the shop, confirmed by lookup.

Khalti redirects the customer to the shop's return_url with query parameters
(pidx, status, purchase_order_id, amount, ...) that nobody signs. The shop
forwards them to POST /webhooks/khalti, as a query string or a form body.

verify() has nothing to check: no signature exists, and the `khalti` entry of
the webhook secret is the merchant's secret key, which Khalti uses to
authenticate the merchant's API calls, not to sign callbacks. So nothing in the
callback is believed: it is a thin event that names a payment (pidx), and the
consumer confirms it with POST epayment/lookup/ before anything is applied.
Neither its status nor its amount nor its purchase_order_id is ever read: the
lookup answer has no order id, so the shop binds pidx to its order when it
initiates the payment (hookline.payments.expect_payment), never through the
callback. normalize() still refuses what cannot be a callback (no pidx, a pidx
not shaped like Khalti's) with MalformedEvent.

- identity: each delivery is its own event, `{pidx}:{received_at}` (UTC, with
  microseconds): a customer may come back again after a Pending lookup, and
  that second forward must be checked again, not dropped as a duplicate;
- object: pidx, so the deliveries about one payment apply in order;
- the envelope's body is the forwarded parameters as a JSON object (the
  consumer reads JSON), kept for operators; only pidx is used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import parse_qsl

from hookline.envelope import Envelope
from hookline.errors import MalformedEvent
from hookline.providers.base import ApiRead, ProviderApi, WebhookRequest, per_delivery_event_id

# The lookup, signed in with the merchant's secret key (the `khalti` entry's first secret)
# as `Authorization: Key <secret>`. It states an expired or canceled payment with a 400.
API = ProviderApi(
    "khalti", "https://khalti.com/api/v2", "khalti", "Key {}", answer_statuses=frozenset({400})
)
# Khalti's pidx: 22 base-57 characters; some room, and never a `:` or a `/`.
PIDX = re.compile(r"[A-Za-z0-9]{1,64}")
# Far more than the ten or so Khalti sends: a bound on what a stranger can make us parse.
MAX_FIELDS = 50


def _fields(request: WebhookRequest) -> dict[str, str]:
    """The forwarded parameters: the form body, else the request's query string."""
    if request.body.strip():
        try:
            text = request.body.decode("utf-8")
            pairs = parse_qsl(text.strip(), keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError):
            raise MalformedEvent("the Khalti callback is not a form or query string") from None
        fields: dict[str, str] = {}
        for name, value in pairs:
            if name in fields:
                raise MalformedEvent(f"the Khalti callback repeats {name!r}")
            fields[name] = value
        return fields
    if len(request.query) > MAX_FIELDS:
        raise MalformedEvent("the Khalti callback has too many parameters")
    return dict(request.query)


def pidx_of(fields: Mapping[str, str]) -> str:
    pidx = fields.get("pidx")
    if pidx is None or not PIDX.fullmatch(pidx):
        raise MalformedEvent("the Khalti callback has no pidx shaped like Khalti's")
    return pidx


class Khalti:
    name = "khalti"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        """Nothing is signed (see the module docstring): the lookup proves or disproves it."""

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        fields = _fields(request)
        pidx = pidx_of(fields)
        return Envelope(
            provider=self.name,
            event_id=per_delivery_event_id(pidx, received_at),
            event_type="payment",
            object_id=pidx,
            # Nothing says when: the lookup says what is true now.
            occurred_at=None,
            received_at=received_at,
            headers={},
            body=json.dumps(fields),
        )


def lookup_read(pidx: str) -> ApiRead:
    """POST /epayment/lookup/ {"pidx"}: the payment's state as Khalti knows it."""
    if not PIDX.fullmatch(pidx):
        raise MalformedEvent("the Khalti pidx is not a pidx")
    return ApiRead(("epayment", "lookup", ""), body={"pidx": pidx})
