"""Svix and Standard Webhooks accept exactly what the official SDKs (in .venv) accept.

Headers: the svix SDK reads each of `svix-id`, `svix-timestamp`, `svix-signature`
and, only when that header is absent, its `webhook-*` twin. Secrets: `whsec_`
and base64 padding are optional; an empty key is refused.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
from hookline.errors import ConfigurationError, SignatureRejected
from hookline.providers import WebhookRequest, build_registry
from hookline.providers.svix import signing_key
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError

REGISTRY = build_registry()
KEY = b"svix-agreement-test-key-fake-01"  # 31 bytes: its base64 has one "=" of padding
SECRET = "whsec_" + base64.b64encode(KEY).decode()
BODY = b'{"type":"user.created","data":{"id":"user_1"}}'
MESSAGE_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
JUNK = {"id": "msg_other", "timestamp": "1000000000", "signature": "v1,AAAA"}


def genuine(now: int) -> dict[str, str]:
    signature = SvixWebhook(SECRET).sign(
        MESSAGE_ID, datetime.fromtimestamp(now, UTC), BODY.decode()
    )
    return {"id": MESSAGE_ID, "timestamp": str(now), "signature": signature}


def signed_headers(body: bytes, now: int) -> dict[str, str]:
    """The SDK's signature of `body` (not BODY) at `now`."""
    signature = SvixWebhook(SECRET).sign(
        MESSAGE_ID, datetime.fromtimestamp(now, UTC), body.decode()
    )
    return {"id": MESSAGE_ID, "timestamp": str(now), "signature": signature}


def ours(provider: str, headers: dict[str, str], now: int, secret: str = SECRET) -> bool:
    try:
        REGISTRY[provider].verify(
            WebhookRequest(body=BODY, headers=headers), (secret,), now=now, tolerance=300
        )
    except SignatureRejected:
        return False
    return True


def sdk(headers: dict[str, str]) -> bool:
    try:
        SvixWebhook(SECRET).verify(BODY, headers)
    except WebhookVerificationError:
        return False
    return True


# (svix-* values, webhook-* values) per header: "good", "junk", "empty" or absent.
LAYOUTS = {
    "svix only": ({"id": "good", "timestamp": "good", "signature": "good"}, {}),
    "webhook only": ({}, {"id": "good", "timestamp": "good", "signature": "good"}),
    "both, svix wins": (
        {"id": "good", "timestamp": "good", "signature": "good"},
        {"id": "junk", "timestamp": "junk", "signature": "junk"},
    ),
    "both, svix junk": (
        {"id": "junk", "timestamp": "good", "signature": "good"},
        {"id": "good", "timestamp": "good", "signature": "good"},
    ),
    "mixed per header": ({"id": "good"}, {"timestamp": "good", "signature": "good"}),
    "empty svix-id hides webhook-id": (
        {"id": "empty", "timestamp": "good", "signature": "good"},
        {"id": "good"},
    ),
    "signature missing everywhere": ({"id": "good", "timestamp": "good"}, {}),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_svix_reads_the_headers_the_svix_sdk_reads(layout: str) -> None:
    now = int(time.time())
    values = {"good": genuine(now), "junk": JUNK}
    svix_headers, webhook_headers = LAYOUTS[layout]
    headers = {
        f"{prefix}{name}": "" if kind == "empty" else values[kind][name]
        for prefix, chosen in (("svix-", svix_headers), ("webhook-", webhook_headers))
        for name, kind in chosen.items()
    }
    assert ours("svix", headers, now) is sdk(headers)


def test_svix_event_sent_with_webhook_headers_is_named_by_webhook_id() -> None:
    now = int(time.time())
    headers = {f"webhook-{name}": value for name, value in genuine(now).items()}
    request = WebhookRequest(body=BODY, headers=headers)
    received = datetime.fromtimestamp(now, UTC)
    envelope = REGISTRY["svix"].normalize(request, received_at=received)
    assert envelope.event_id == MESSAGE_ID
    assert envelope.occurred_at == received


@pytest.mark.parametrize("provider", ["svix", "standard"])
@pytest.mark.parametrize("header", ["id", "timestamp"])
def test_lone_surrogate_in_a_header_is_refused_not_a_crash(provider: str, header: str) -> None:
    now = int(time.time())
    prefix = "svix-" if provider == "svix" else "webhook-"
    headers = {prefix + name: value for name, value in genuine(now).items()}
    headers[prefix + header] = "msg_\ud800"
    assert not ours(provider, headers, now)


def _unpadded(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode().rstrip("=")


ACCEPTED_SECRETS = {
    "padded": SECRET,
    "unpadded, one = dropped": _unpadded(KEY),
    "unpadded, two = dropped": _unpadded(KEY[:-1]),
    "no whsec_ prefix": base64.b64encode(KEY).decode(),
    "one byte": _unpadded(b"k"),
}


@pytest.mark.parametrize("secret", ACCEPTED_SECRETS.values(), ids=ACCEPTED_SECRETS)
@pytest.mark.parametrize("provider", ["svix", "standard"])
def test_secrets_the_sdks_accept_verify_what_they_sign(provider: str, secret: str) -> None:
    now = int(time.time())
    sdk_signer = SvixWebhook(secret) if provider == "svix" else standardwebhooks.Webhook(secret)
    signature = sdk_signer.sign(MESSAGE_ID, datetime.fromtimestamp(now, UTC), BODY.decode())
    prefix = "svix-" if provider == "svix" else "webhook-"
    headers = {prefix + "id": MESSAGE_ID, prefix + "timestamp": str(now)}
    assert ours(provider, {**headers, prefix + "signature": signature}, now, secret)


REFUSED_SECRETS = {
    "whsec_ alone": "whsec_",
    "padding only": "whsec_==",
    "empty": "",
    "one base64 character": "whsec_a",
}


@pytest.mark.parametrize("secret", REFUSED_SECRETS.values(), ids=REFUSED_SECRETS)
def test_secrets_the_sdks_refuse_are_configuration_errors(secret: str) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - each SDK raises its own type
        standardwebhooks.Webhook(secret)
    with pytest.raises(ConfigurationError):
        signing_key(secret)


@pytest.mark.parametrize(
    "secret",
    [" " + SECRET, SECRET + "\n", "whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" + KEY).decode()],
    ids=["leading space", "trailing newline", "url-safe alphabet"],
)
def test_characters_outside_base64_are_refused_not_dropped(secret: str) -> None:
    # Deliberately stricter than the SDKs, which drop them and key with what is left.
    with pytest.raises(ConfigurationError):
        signing_key(secret)


@pytest.mark.parametrize("provider", ["svix", "standard"])
@pytest.mark.parametrize("padded", [f" {MESSAGE_ID}", f"{MESSAGE_ID} ", f"\t{MESSAGE_ID}\t"])
def test_one_signature_has_one_identity_whatever_the_spaces_around_its_id(
    provider: str, padded: str
) -> None:
    # verify() signs the id without the spaces around it: normalize must key on that id.
    now = int(time.time())
    prefix = "svix-" if provider == "svix" else "webhook-"
    headers = {prefix + name: value for name, value in genuine(now).items()}
    plain = WebhookRequest(body=BODY, headers=headers)
    spaced = WebhookRequest(body=BODY, headers=headers | {prefix + "id": padded})
    received = datetime.fromtimestamp(now, UTC)
    for request in (plain, spaced):
        REGISTRY[provider].verify(request, (SECRET,), now=now, tolerance=300)
    assert (
        REGISTRY[provider].normalize(spaced, received_at=received).event_id
        == REGISTRY[provider].normalize(plain, received_at=received).event_id
        == MESSAGE_ID
    )


@pytest.mark.parametrize("provider", ["svix", "standard"])
@pytest.mark.parametrize("body_time", ["0001-01-01T00:00:00Z", 1.5, "yesterday"])
def test_a_body_time_no_reader_holds_falls_back_to_the_signed_header_time(
    provider: str, body_time: object
) -> None:
    # Go's zero time and other free-form body times: the sender's event is still genuine.
    now = int(time.time())
    body = json.dumps({"type": "user.created", "timestamp": body_time, "data": {"id": "u"}})
    headers = {
        ("svix-" if provider == "svix" else "webhook-") + name: value
        for name, value in signed_headers(body.encode(), now).items()
    }
    request = WebhookRequest(body=body.encode(), headers=headers)
    REGISTRY[provider].verify(request, (SECRET,), now=now, tolerance=300)
    envelope = REGISTRY[provider].normalize(request, received_at=datetime.fromtimestamp(now, UTC))
    assert envelope.occurred_at == datetime.fromtimestamp(now, UTC)
