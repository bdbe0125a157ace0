from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
from hookline.receiver.api import intake
from moto import mock_aws

from tests.support.samples import SQUARE_URL
from tests.support.stack import Stack, create_stack

AWS_TEST_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process moto with fake credentials; nothing can reach real AWS."""
    for name, value in AWS_TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def stack(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The receiver's queues, secret and environment, from template.yaml."""
    created = create_stack()
    for name, value in created.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SQUARE_NOTIFICATION_URL", SQUARE_URL)
    intake.cache_clear()
    yield created
    intake.cache_clear()


class _CurrentStdout(io.TextIOBase):
    """Writes to whatever sys.stdout is now, so pytest's per-test capture sees log lines."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(autouse=True, scope="session")
def _logs_follow_stdout() -> None:
    # Powertools' log handler keeps the stdout it saw at import (pytest's
    # collection-time capture, closed later).
    from hookline.observability import logger

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    handler.stream = _CurrentStdout()


@pytest.fixture
def output(capsys: pytest.CaptureFixture[str]) -> pytest.CaptureFixture[str]:
    """Log lines and metrics as the function prints them."""
    return capsys
