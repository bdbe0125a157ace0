"""The queue envelope as SQS carries it: every genuine event can be sent, and reads back."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from hookline.envelope import Envelope
from hookline.providers import WebhookRequest
from hookline.providers.khalti import Khalti

RECEIVED_AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
# SendMessage's allowed characters ("#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD |
# #x10000 to #x10FFFF"; any other is refused):
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
SQS_REFUSED = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@pytest.mark.parametrize("text", ["\uffff", "\ufffe", "gift \ufffe\uffff note", "\\uffff"])
def test_a_body_holding_a_character_sqs_refuses_is_sent_escaped_and_reads_back(text: str) -> None:
    # Valid UTF-8 JSON a sender may sign unescaped (a customer's note).
    body = json.dumps({"id": "evt_1", "note": text}, ensure_ascii=False)
    envelope = Envelope(
        provider="razorpay",
        event_id="evt_1",
        event_type="payment.captured",
        received_at=RECEIVED_AT,
        headers={"x-label": text.strip("\\")},
        body=body,
    )
    message = envelope.to_message_body()
    assert SQS_REFUSED.search(message) is None
    assert Envelope.model_validate_json(message) == envelope


def test_an_unsigned_khalti_callback_cannot_make_a_message_sqs_refuses() -> None:
    # Anyone can post this: it must never turn into a 503 (a false "SQS is down").
    request = WebhookRequest(body=b"pidx=bZQLD9wRVWo4CdESSfuSsB&purchase_order_name=%EF%BF%BF")
    envelope = Khalti().normalize(request, received_at=RECEIVED_AT)
    assert SQS_REFUSED.search(envelope.to_message_body()) is None
