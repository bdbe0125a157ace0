"""The AdyenCapture template parameter reaches the Adyen handlers through the consumer's
settings: a deploy that says `manual` never counts an authorisation as money."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hookline import template
from hookline.consumer.build import consumer
from hookline.errors import ConfigurationError
from hookline.handlers import adyen
from hookline.settings import ConsumerSettings

from tests.support.pipeline import Pipeline


@pytest.fixture
def restored_capture() -> Iterator[None]:
    yield
    adyen.configure("immediate")
    consumer.cache_clear()


def test_the_template_passes_the_parameter_to_the_consumer() -> None:
    document = template.load()
    parameter = document["Parameters"]["AdyenCapture"]
    assert (parameter["Default"], parameter["AllowedValues"]) == (
        "immediate",
        ["immediate", "manual"],
    )
    variables = document["Resources"]["ConsumerFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["ADYEN_CAPTURE"] == {"Ref": "AdyenCapture"}


def test_the_consumer_configures_the_adyen_handlers_from_its_environment(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, restored_capture: None
) -> None:
    monkeypatch.setenv("ADYEN_CAPTURE", "manual")
    consumer.cache_clear()
    consumer()
    assert adyen.capture_mode() == "manual"


def test_an_unknown_mode_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="ADYEN_CAPTURE"):
        ConsumerSettings.from_env(
            {
                "QUEUE_URL": "q",
                "SECRETS_NAME": "s",
                "IDEMPOTENCY_TABLE": "t",
                "DATABASE_URL": "postgresql://",
                "ADYEN_CAPTURE": "sometimes",
            }
        )
