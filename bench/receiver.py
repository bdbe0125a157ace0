"""Receiver speed against floors measured in the same run. Prints; asserts nothing.

Warm: median time of one warm request (a 3 KB Stripe event through the whole
Lambda handler: Powertools resolver, logger, metrics, verification, envelope,
send) with the SQS client and the secret store stubbed, against the floor of
HMAC verify + JSON parse of the same request. Goal: ratio <= 3.

Cold: a fresh interpreter importing the receiver and building its clients, as
a Lambda cold start does, against `import boto3; boto3.client("sqs")`, which
any receiver must load. Goal: ratio <= 1.3. Lambda's environment is set
(AWS_LAMBDA_FUNCTION_NAME), so the tracer loads X-Ray as it would there.

    .venv/bin/python bench/receiver.py
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

SECRET = "whsec_bench_not_a_real_secret"  # noqa: S105 - fake, bench only
WARM_ROUNDS = 3000
COLD_ROUNDS = 9


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


class StubSQS:
    def send_message(self, **_: Any) -> dict[str, str]:
        return {"MessageId": "00000000-0000-0000-0000-000000000000"}


class StubSecrets:
    def get(self, *_: Any, **__: Any) -> dict[str, list[str]]:
        return {"stripe": [SECRET]}


def _load_receiver_handler() -> Any:
    spec = importlib.util.spec_from_file_location(
        "receiver_app", ROOT / "functions" / "receiver" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def median_seconds(function: Any, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def warm() -> tuple[float, float]:
    os.environ.update(
        {"QUEUE_URL": "stub", "SECRETS_NAME": "stub", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    lambda_handler = _load_receiver_handler()
    from hookline.providers import build_registry
    from hookline.queue import EventQueue
    from hookline.receiver import api
    from hookline.receiver.intake import Intake
    from hookline.secrets import WebhookSecrets

    api.intake.cache_clear()
    stub = Intake(
        providers=build_registry(),
        secrets=WebhookSecrets("stub", StubSecrets()),  # type: ignore[arg-type]
        queue=EventQueue("stub", StubSQS()),  # type: ignore[arg-type]
    )
    api.intake = lambda: stub  # type: ignore[assignment]

    body = stripe_body()
    timestamp = int(time.time())
    signature = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    header = f"t={timestamp},v1={signature}"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "POST /webhooks/{provider}",
        "rawPath": "/webhooks/stripe",
        "rawQueryString": "",
        "headers": {"stripe-signature": header, "content-type": "application/json"},
        "pathParameters": {"provider": "stripe"},
        "requestContext": {
            "domainName": "bench.example",
            "http": {"method": "POST", "path": "/webhooks/stripe"},
            "requestId": "bench",
            "stage": "$default",
        },
        "body": body.decode(),
        "isBase64Encoded": False,
    }

    class Context:
        function_name = "bench"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
        aws_request_id = "bench"

        def get_remaining_time_in_millis(self) -> int:
            return 10_000

    context = Context()

    def request() -> None:
        answer = lambda_handler(event, context)
        assert answer["statusCode"] == 200, answer

    def floor() -> None:
        raw = event["body"].encode()
        t, v1 = (item.split("=", 1)[1] for item in event["headers"]["stripe-signature"].split(","))
        expected = hmac.new(SECRET.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected.encode(), v1.encode())
        json.loads(raw)

    # Log lines and metrics go to stdout as in Lambda; keep them off the terminal.
    with contextlib.redirect_stdout(io.StringIO()):
        from hookline.observability import logger

        logger.registered_handler.setStream(io.StringIO())  # type: ignore[attr-defined]
        for _ in range(200):
            request()
            floor()
        ours = median_seconds(request, WARM_ROUNDS)
    return ours, median_seconds(floor, WARM_ROUNDS)


COLD_OURS = """
import time
start = time.perf_counter()
import app
from hookline.receiver.api import intake
intake()
print(time.perf_counter() - start)
"""
COLD_FLOOR = """
import time
start = time.perf_counter()
import boto3
boto3.client("sqs")
print(time.perf_counter() - start)
"""


def cold(code: str, extra_env: dict[str, str] | None = None) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / "receiver"), str(ROOT / "shared")]),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "hookline-ReceiverFunction",
        "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench.fifo",
        "SECRETS_NAME": "bench",
        **(extra_env or {}),
    }
    times = []
    for _ in range(COLD_ROUNDS):
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        times.append(float(run.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def main() -> None:
    ours, floor = warm()
    print(f"warm request, 3 KB Stripe event: {ours * 1e6:8.1f} us  (median of {WARM_ROUNDS})")
    print(f"floor, HMAC verify + JSON parse:  {floor * 1e6:8.1f} us")
    print(f"warm ratio: {ours / floor:.2f}  (goal <= 3)")

    cold_floor = cold(COLD_FLOOR)
    cold_ours = cold(COLD_OURS)
    cold_untraced = cold(COLD_OURS, {"POWERTOOLS_TRACE_DISABLED": "true"})
    print(f"cold import + clients, receiver:  {cold_ours * 1e3:8.1f} ms  (median of {COLD_ROUNDS})")
    print(f"  of which without X-Ray tracer:  {cold_untraced * 1e3:8.1f} ms")
    print(f"floor, boto3 + sqs client:        {cold_floor * 1e3:8.1f} ms")
    untraced = cold_untraced / cold_floor
    print(f"cold ratio: {cold_ours / cold_floor:.2f}  (goal <= 1.3; {untraced:.2f} untraced)")
    print(f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
