"""GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body.

The legacy SHA-1 `X-Hub-Signature` header is never consulted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from hookline.envelope import Envelope
from hookline.errors import MalformedEvent, RejectReason, SignatureRejected
from hookline.providers.base import (
    WebhookRequest,
    body_text,
    dig,
    json_object,
    pick_headers,
    required_header,
    text_field,
)
from hookline.providers.crypto import hex_digest, matches_any

SIGNATURE_HEADER = "x-hub-signature-256"
PREFIX = "sha256="
# The object a delivery is about, most specific first: events about one pull
# request or issue are ordered together, the rest by repository.
OBJECT_KINDS = (
    "pull_request",
    "issue",
    "discussion",
    "release",
    "check_run",
    "check_suite",
    "workflow_run",
    "workflow_job",
    "deployment",
)


def _object_id(data: Mapping[str, Any]) -> str | None:
    scope = text_field(dig(data, "repository", "full_name"), "repository.full_name") or text_field(
        dig(data, "organization", "login"), "organization.login"
    )
    for kind in OBJECT_KINDS:
        object_id = dig(data, kind, "id")
        if isinstance(object_id, int | str) and not isinstance(object_id, bool):
            return f"{scope}/{kind}/{object_id}" if scope else f"{kind}/{object_id}"
    return scope


class GitHub:
    name = "github"

    def verify(
        self, request: WebhookRequest, secrets: Sequence[str], *, now: float, tolerance: int
    ) -> None:
        signature = required_header(request, SIGNATURE_HEADER)
        if not signature.startswith(PREFIX):
            raise SignatureRejected(RejectReason.MALFORMED_HEADER)
        expected = [PREFIX + hex_digest(secret.encode("utf-8"), request.body) for secret in secrets]
        if not matches_any(expected, [signature]):
            raise SignatureRejected(RejectReason.MISMATCH)

    def normalize(self, request: WebhookRequest, *, received_at: datetime) -> Envelope:
        data = json_object(request.body)
        delivery = request.header("x-github-delivery")
        event = request.header("x-github-event")
        if not delivery:
            raise MalformedEvent("X-GitHub-Delivery is missing")
        if not event:
            raise MalformedEvent("X-GitHub-Event is missing")
        action = text_field(data.get("action"), "action")
        return Envelope(
            provider=self.name,
            event_id=delivery,
            event_type=f"{event}.{action}" if action else event,
            object_id=_object_id(data),
            occurred_at=None,  # GitHub deliveries carry no event time of their own.
            received_at=received_at,
            headers=pick_headers(request, ["x-github-event", "x-github-hook-id"]),
            body=body_text(request),
        )
