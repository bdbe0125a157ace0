"""The CLI commands that need no running stack: `event`, and the errors of `status` and `send`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hookline.cli import main
from hookline.receiver.api import intake

from tests.support.lambda_context import FakeLambdaContext
from tests.support.signers import SECRETS
from tests.support.stack import Stack, load_function


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({p: list(s) for p, s in SECRETS.items()}))
    return path


@pytest.mark.parametrize(
    ("provider", "event_type"),
    [
        ("stripe", "payment_intent.succeeded"),
        ("square", "payment.updated"),
        ("mercadopago", "payment"),
        ("shopify", "orders/paid"),
        ("github", "push"),
        ("svix", "user.created"),
    ],
)
def test_the_written_event_is_queued_by_the_receiver(
    stack: Stack,
    secrets_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    event_type: str,
) -> None:
    # Square's signed URL is derived from the event's domain, as `sam local invoke` would.
    monkeypatch.delenv("SQUARE_NOTIFICATION_URL")
    intake.cache_clear()
    output = tmp_path / "event.json"
    env_file = tmp_path / "env.json"
    code = main(
        [
            "event",
            provider,
            event_type,
            "--secrets",
            str(secrets_file),
            "-o",
            str(output),
            "--env-file",
            str(env_file),
            "--data-dir",
            str(tmp_path / "no-stack"),
        ]
    )
    assert code == 0
    event = json.loads(output.read_text())
    answer = load_function("receiver").lambda_handler(event, FakeLambdaContext())
    assert answer["statusCode"] == 200, answer
    assert len(stack.messages()) == 1

    environment = json.loads(env_file.read_text())
    assert environment["ReceiverFunction"]["QUEUE_URL"] == "<EventsQueue>"
    assert environment["ConsumerFunction"]["IDEMPOTENCY_TABLE"] == "<IdempotencyTable>"
    assert "SQUARE_NOTIFICATION_URL" not in environment["ReceiverFunction"]


def test_unknown_providers_and_event_types_are_clear_errors(
    secrets_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["event", "nosuch", "payment", "--secrets", str(secrets_file)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("hookline event: Invalid value for 'PROVIDER': 'nosuch' is not one of")
    assert len(error.splitlines()) == 1
    assert main(["event", "stripe", "payment_intent.exploded", "--secrets", str(secrets_file)]) == 2
    error = capsys.readouterr().err
    assert "no stripe 'payment_intent.exploded' fixture" in error
    assert "payment_intent.succeeded" in error


def test_status_without_a_running_stack_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--data-dir", str(tmp_path)]) == 3
    error = capsys.readouterr().err
    assert error.startswith(f"hookline status: no local stack is running in {tmp_path} (start")
    assert f"hookline local --data-dir {tmp_path}` or `make run ARGS=" in error


def test_send_to_nothing_says_what_to_start_and_sends_nothing(
    secrets_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "send",
            "stripe",
            "payment_intent.succeeded",
            "--url",
            "http://127.0.0.1:9",
            "--secrets",
            str(secrets_file),
            "--data-dir",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == 5
    output = capsys.readouterr()
    assert output.out == ""
    assert output.err.startswith(
        "hookline send: nothing answers at http://127.0.0.1:9: start the local stack with `"
    )
