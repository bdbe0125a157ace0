"""The receiver's warm request against a hand-written Powertools receiver doing
the same work, measured in the same run. Prints; asserts nothing.

Both take the same API Gateway (payload 2.0) event, a 3 KB Stripe event,
through the whole Lambda handler, with the same stub SQS client. The peer is
what a careful engineer would write by hand with Powertools:
APIGatewayHttpResolver, Logger with inject_lambda_context, Metrics with
log_metrics; HMAC-SHA256 of the Stripe-Signature compared in constant time,
the timestamp's tolerance, json.loads, the envelope with the same fields,
deduplication and group ids, one log line and one metric per request. Ours
does more on the same path (every check in hookline.receiver.intake and the
provider, the per-provider metric breakdown, carried in the same EMF line as
the total): the goal is that it costs no more. Goal: ratio <= 1.0. Rounds
alternate ours and the peer; the figure is the median of each. Cold starts:
bench/cold.py.

    .venv/bin/python bench/receiver.py [--rounds N] [--profile]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import cProfile
import hashlib
import hmac
import importlib.util
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.table import Row, print_table  # noqa: E402

SECRET = "whsec_bench_not_a_real_secret"  # noqa: S105 - fake, bench only
ROUNDS = 20
REQUESTS_PER_ROUND = 200
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bench.fifo"
# Log lines and EMF metrics are formatted and written, as in Lambda, to nowhere.
SINK = open(os.devnull, "w")  # noqa: SIM115 - open for the process's life

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class StubSQS:
    def send_message(self, **_: Any) -> dict[str, str]:
        return {"MessageId": "00000000-0000-0000-0000-000000000000"}


class StubSecrets:
    def get(self, *_: Any, **__: Any) -> dict[str, list[str]]:
        return {"stripe": [SECRET]}


class Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def stripe_body(size: int = 3072) -> bytes:
    payload: dict[str, Any] = {
        "id": "evt_bench",
        "object": "event",
        "created": int(time.time()),
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_bench", "amount": 2000, "currency": "usd", "metadata": {}}},
    }
    body = json.dumps(payload).encode()
    payload["data"]["object"]["description"] = "x" * (size - len(body) - 20)
    return json.dumps(payload).encode()


def api_event() -> dict[str, Any]:
    body = stripe_body()
    timestamp = int(time.time())
    signature = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/{provider}",
        "rawPath": "/webhooks/stripe",
        "rawQueryString": "",
        "headers": {
            "stripe-signature": f"t={timestamp},v1={signature}",
            "content-type": "application/json",
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        },
        "pathParameters": {"provider": "stripe"},
        "requestContext": {
            "domainName": "bench.example",
            "http": {"method": "POST", "path": "/webhooks/stripe", "sourceIp": "192.0.2.1"},
            "requestId": "bench",
            "routeKey": "POST /webhooks/{provider}",
            "stage": "$default",
        },
        "body": body.decode(),
        "isBase64Encoded": False,
    }


def ours() -> Handler:
    """functions/receiver/app.py as Lambda imports it, its clients stubbed."""
    os.environ.update(
        {
            "QUEUE_URL": QUEUE_URL,
            "SECRETS_NAME": "stub",
            "AWS_DEFAULT_REGION": "us-east-1",
            # template.yaml's default, Tracing=PassThrough.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    spec = importlib.util.spec_from_file_location(
        "receiver_app", ROOT / "functions" / "receiver" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    from hookline.providers import build_registry
    from hookline.queue import EventQueue
    from hookline.receiver import api
    from hookline.receiver.intake import Intake
    from hookline.secrets import WebhookSecrets

    stub = Intake(
        providers=build_registry(),
        secrets=WebhookSecrets("stub", StubSecrets()),  # type: ignore[arg-type]
        queue=EventQueue(QUEUE_URL, StubSQS()),  # type: ignore[arg-type]
    )
    api.intake.cache_clear()
    api.intake = lambda: stub  # type: ignore[assignment]
    from hookline.observability import logger

    logger.registered_handler.setStream(SINK)  # type: ignore[attr-defined]
    handler: Handler = module.lambda_handler
    return handler


def peer() -> Handler:
    """A minimal hand-written Powertools receiver for Stripe, doing the same work."""
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.event_handler import (
        APIGatewayHttpResolver,
        Response,
        content_types,
    )
    from aws_lambda_powertools.metrics import MetricUnit

    logger = Logger(service="peer", stream=SINK)
    metrics = Metrics(namespace="Peer", service="peer")
    app = APIGatewayHttpResolver()
    sqs = StubSQS()
    secrets = [SECRET.encode()]

    def answer(status: int, payload: dict[str, Any]) -> Response[str]:
        return Response(status, content_types.APPLICATION_JSON, json.dumps(payload))

    def digest(*parts: str) -> str:
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()

    @app.post("/webhooks/<provider>")
    def receive(provider: str) -> Response[str]:
        event = app.current_event
        try:
            raw = (
                base64.b64decode(event.body or "", validate=True)
                if event.is_base64_encoded
                else (event.body or "").encode()
            )
        except binascii.Error:
            return answer(400, {"error": "malformed"})
        header = (event.headers or {}).get("stripe-signature", "")
        items = [item.partition("=") for item in header.split(",")]
        timestamps = [value for key, _, value in items if key == "t"]
        signatures = [value.encode() for key, _, value in items if key == "v1"]
        if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
            return answer(401, {"error": "signature"})
        signed = timestamps[0].encode() + b"." + raw
        expected = [hmac.new(key, signed, hashlib.sha256).hexdigest().encode() for key in secrets]
        if not any(hmac.compare_digest(e, s) for e in expected for s in signatures):
            return answer(401, {"error": "signature"})
        now = time.time()
        if abs(now - int(timestamps[0])) > 300:
            return answer(401, {"error": "signature"})
        data = json.loads(raw)
        event_id, object_id = data["id"], data["data"]["object"]["id"]
        envelope = {
            "provider": provider,
            "event_id": event_id,
            "event_type": data["type"],
            "object_id": object_id,
            "occurred_at": datetime.fromtimestamp(data["created"], UTC).isoformat(),
            "received_at": datetime.fromtimestamp(now, UTC).isoformat(),
            "headers": {},
            "body": raw.decode(),
        }
        message_id = sqs.send_message(
            QueueUrl=QUEUE_URL,
            MessageBody=json.dumps(envelope),
            MessageDeduplicationId=digest(provider, event_id),
            MessageGroupId=f"{provider}:{digest(provider, object_id)}",
        )["MessageId"]
        logger.append_keys(correlation_id=event_id)
        logger.info(
            "webhook queued",
            extra={
                "provider": provider,
                "event_type": data["type"],
                "object_id": object_id,
                "message_id": message_id,
            },
        )
        metrics.add_metric(name="WebhooksAccepted", unit=MetricUnit.Count, value=1)
        return answer(200, {"received": True, "event_id": event_id})

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return handler


def round_seconds(handler: Handler, event: dict[str, Any], requests: int) -> float:
    """Median seconds of one request, over `requests` requests."""
    context = Context()
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        answer = handler(event, context)
        samples.append(time.perf_counter() - start)
        assert answer["statusCode"] == 200, answer
    return statistics.median(samples)


def measure(rounds: int = ROUNDS) -> tuple[float, float]:
    """(ours, peer) in microseconds: the median of each side's round medians."""
    event = api_event()
    handlers = {"ours": ours(), "peer": peer()}
    medians: dict[str, list[float]] = {name: [] for name in handlers}
    with redirect_stdout(SINK):
        for handler in handlers.values():
            round_seconds(handler, event, REQUESTS_PER_ROUND)  # warm both
        for _ in range(rounds):
            for name, handler in handlers.items():
                medians[name].append(round_seconds(handler, event, REQUESTS_PER_ROUND))
    return statistics.median(medians["ours"]) * 1e6, statistics.median(medians["peer"]) * 1e6


def rows(rounds: int = ROUNDS) -> list[Row]:
    mine, theirs = measure(rounds)
    return [
        Row(
            figure="receiver warm request (3 KB Stripe event)",
            ours=mine,
            floor=theirs,
            unit="us",
            goal="<= 1.0x",
            floor_name="hand-written Powertools receiver",
        )
    ]


def profile(requests: int = 5000, order: str = "cumulative") -> None:
    """Where ours spends a warm request: cProfile, the top 30 by `order`."""
    event = api_event()
    handler = ours()
    context = Context()
    profiler = cProfile.Profile()
    with redirect_stdout(SINK):
        handler(event, context)
        profiler.enable()
        for _ in range(requests):
            handler(event, context)
        profiler.disable()
    pstats.Stats(profiler).sort_stats(order).print_stats(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--profile",
        choices=["cumulative", "tottime"],
        help="cProfile ours instead, sorted so",
    )
    arguments = parser.parse_args()
    if arguments.profile:
        profile(order=arguments.profile)
    else:
        print_table(rows(arguments.rounds))
