"""For SDKs that only verify: our verdict equals the SDK's on the same inputs, valid and invalid."""

from __future__ import annotations

import base64
import hashlib
import hmac

from githubkit.webhooks import verify as githubkit_verify
from hookline.errors import SignatureRejected
from hookline.providers import WebhookRequest, build_registry
from hypothesis import given, settings
from hypothesis import strategies as st
from mercadopago.webhook.validator import InvalidWebhookSignatureError, WebhookSignatureValidator
from square.utils.webhooks_helper import verify_signature as square_verify

REGISTRY = build_registry()
NOW = 1_760_000_000
CASES = settings(max_examples=300, deadline=None)
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

TOLERANCE = 300

secrets = st.text(alphabet=ALNUM + "-_", min_size=1, max_size=40)
# Signed ids as providers issue them. hookline deliberately refuses a Mercado Pago
# data.id or request id holding anything but letters, digits, `-` and `_` (a `;` or
# `:` makes the manifest ambiguous), which the SDK accepts (docs/providers.md).
ids = st.text(alphabet=ALNUM + "-", min_size=1, max_size=30)
# How the candidate signature relates to the genuine one.
MUTATIONS = [
    "genuine",
    "flip",
    "truncate",
    "other_secret",
    "other_body",
    "uppercase",
    "empty_suffix",
]


def ours(provider: str, request: WebhookRequest, secret: str) -> bool:
    try:
        REGISTRY[provider].verify(request, (secret,), now=NOW, tolerance=TOLERANCE)
    except SignatureRejected:
        return False
    return True


def mutate(signature: str, mutation: str, index: int, resign: str) -> str:
    if mutation == "flip":
        position = index % len(signature)
        return (
            signature[:position]
            + ("0" if signature[position] != "0" else "1")
            + signature[position + 1 :]
        )
    if mutation == "truncate":
        return signature[: max(1, len(signature) - 1 - index % 8)]
    if mutation in ("other_secret", "other_body"):
        return resign
    if mutation == "uppercase":
        return signature.upper()
    return signature


# ---------------------------------------------------------------- square


def _square_signature(key: str, url: str, body: str) -> str:
    return base64.b64encode(
        hmac.new(key.encode(), (url + body).encode(), hashlib.sha256).digest()
    ).decode()


@CASES
@given(
    body=st.text(min_size=1, max_size=300),
    key=secrets,
    other_key=secrets,
    path=ids,
    mutation=st.sampled_from(MUTATIONS),
    index=st.integers(0, 1000),
)
def test_square_verdict_equals_squareup_sdk(
    body: str, key: str, other_key: str, path: str, mutation: str, index: int
) -> None:
    url = f"https://hooks.example.test/{path}"
    genuine = _square_signature(key, url, body)
    resign = (
        _square_signature(other_key, url, body)
        if mutation == "other_secret"
        else _square_signature(key, url, body + ".")
    )
    header = mutate(genuine, mutation, index, resign)
    request = WebhookRequest(
        body=body.encode(), headers={"x-square-hmacsha256-signature": header}, url=url
    )
    sdk = square_verify(
        request_body=body, signature_header=header, signature_key=key, notification_url=url
    )
    assert ours("square", request, key) == sdk


# ---------------------------------------------------------------- mercado pago


def _mp_signature(secret: str, data_id: str | None, request_id: str | None, ts: str) -> str:
    parts = ([f"id:{data_id}"] if data_id else []) + (
        [f"request-id:{request_id}"] if request_id else []
    )
    manifest = ";".join([*parts, f"ts:{ts}"]) + ";"
    return hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()


@CASES
@given(
    secret=secrets,
    other_secret=secrets,
    data_id=st.none() | ids,
    request_id=st.none() | ids,
    # hookline always bounds ts; the SDK does when asked (tolerance_seconds), reading
    # ts as seconds. Milliseconds are left out: hookline reads a 13-digit ts as
    # milliseconds, the SDK as seconds (a documented difference, docs/providers.md).
    ts=st.integers(NOW - 2 * TOLERANCE, NOW + 2 * TOLERANCE).map(str),
    mutation=st.sampled_from([*MUTATIONS, "other_ts", "drop_request_id", "other_data_id"]),
    index=st.integers(0, 1000),
)
def test_mercadopago_verdict_equals_mercadopago_sdk(
    secret: str,
    other_secret: str,
    data_id: str | None,
    request_id: str | None,
    ts: str,
    mutation: str,
    index: int,
) -> None:
    signature = _mp_signature(secret, data_id, request_id, ts)
    resign = _mp_signature(
        other_secret if mutation == "other_secret" else secret, data_id, request_id, ts
    )
    header_ts, sent_request_id, sent_data_id = ts, request_id, data_id
    if mutation == "other_ts":
        header_ts = str(int(ts) + 1)
    if mutation == "drop_request_id":
        sent_request_id = None
    if mutation == "other_data_id":
        sent_data_id = (data_id or "") + "9"
    header = f"ts={header_ts},v1={mutate(signature, mutation, index, resign)}"
    request = WebhookRequest(
        body=b"{}",
        headers={"x-signature": header}
        | ({"x-request-id": sent_request_id} if sent_request_id else {}),
        query={"data.id": sent_data_id} if sent_data_id else {},
    )
    try:
        WebhookSignatureValidator.validate(
            header,
            sent_request_id,
            sent_data_id,
            secret,
            tolerance_seconds=TOLERANCE,
            now=lambda: NOW * 1000,
        )
        sdk = True
    except InvalidWebhookSignatureError:
        sdk = False
    assert ours("mercadopago", request, secret) == sdk


# ---------------------------------------------------------------- github


def _github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@CASES
@given(
    body=st.binary(max_size=300),
    secret=secrets,
    other_secret=secrets,
    mutation=st.sampled_from(MUTATIONS),
    index=st.integers(0, 1000),
)
def test_github_verdict_equals_githubkit(
    body: bytes, secret: str, other_secret: str, mutation: str, index: int
) -> None:
    genuine = _github_signature(secret, body)
    resign = (
        _github_signature(other_secret, body)
        if mutation == "other_secret"
        else _github_signature(secret, body + b".")
    )
    # Mutate the hex only: githubkit also accepts legacy sha1=, which hookline never does.
    header = "sha256=" + mutate(
        genuine.removeprefix("sha256="), mutation, index, resign.removeprefix("sha256=")
    )
    request = WebhookRequest(body=body, headers={"x-hub-signature-256": header})
    assert ours("github", request, secret) == githubkit_verify(secret, body, header)
