"""The consumer's wiring in template.yaml: the properties its guarantees rest on."""

from __future__ import annotations

from typing import Any

from hookline import template


def properties(document: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(template.resource(document, name)["Properties"])


def test_consumer_event_source() -> None:
    document = template.load()
    consumer = properties(document, "ConsumerFunction")
    source = consumer["Events"]["Queue"]["Properties"]
    assert source["Queue"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    assert source["BatchSize"] == 10
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "ConsumerMaxConcurrency"}
    assert consumer["Handler"] == "app.lambda_handler"
    assert consumer["CodeUri"] == "functions/consumer/"


def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout() -> None:
    document = template.load()
    queue = properties(document, "EventsQueue")
    assert queue["VisibilityTimeout"] >= 6 * properties(document, "ConsumerFunction")["Timeout"]


def test_consumer_environment_names_what_the_design_names() -> None:
    document = template.load()
    resolver = template.Resolver(
        document,
        refs={"EventsQueue": "q", "EventsDLQ": "d", "IdempotencyTable": "t"},
    )
    environment = template.function_environment(document, "ConsumerFunction", resolver)
    expected = ["QUEUE_URL", "IDEMPOTENCY_TABLE", "SECRETS_NAME", "DATABASE_URL"]
    expected += ["DATABASE_SECRET_NAME", "ORPHAN_DEADLINE_HOURS", "POWERTOOLS_SERVICE_NAME"]
    for name in expected:
        assert name in environment, name
    assert environment["ORPHAN_DEADLINE_HOURS"] == "72"


def test_idempotency_table_has_the_powertools_key_and_ttl() -> None:
    table = properties(template.load(), "IdempotencyTable")
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"


def test_consumer_alarms_exist_and_notify() -> None:
    resources = template.load()["Resources"]
    for name in ("ConsumerErrorsAlarm", "EventFailuresAlarm", "DeadLetterQueueAlarm",
                 "QueueAgeAlarm", "AmountMismatchAlarm"):  # fmt: skip
        alarm = resources[name]["Properties"]
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert f"docs/operations.md#{name.lower()}" in alarm["AlarmDescription"]
