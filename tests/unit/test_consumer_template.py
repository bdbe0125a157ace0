"""The consumer's wiring in template.yaml: the properties its guarantees rest on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from hookline import sam, template


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


def _dependencies(resources: dict[str, Any], name: str) -> set[str]:
    """Every resource CloudFormation must create or update before `name` (DependsOn and
    references, transitively)."""

    def direct(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            if set(value) == {"Ref"} and value["Ref"] in resources:
                yield value["Ref"]
            elif set(value) == {"Fn::GetAtt"}:
                yield value["Fn::GetAtt"][0]
            elif set(value) == {"Fn::Sub"}:
                text = (
                    value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
                )
                for match in re.findall(r"\$\{([A-Za-z0-9]+)", text):
                    if match in resources:
                        yield match
                if isinstance(value["Fn::Sub"], list):
                    yield from direct(value["Fn::Sub"][1])
            else:
                for item in value.values():
                    yield from direct(item)
        elif isinstance(value, list):
            for item in value:
                yield from direct(item)

    found: set[str] = set()
    todo = [name]
    while todo:
        resource = resources[todo.pop()]
        depends = resource.get("DependsOn", [])
        explicit = [depends] if isinstance(depends, str) else depends
        for dependency in [*direct(resource.get("Properties", {})), *explicit]:
            if dependency not in found:
                found.add(dependency)
                todo.append(dependency)
    return found


def test_the_consumer_and_its_event_source_come_after_the_migrations() -> None:
    resources = sam.translate()["Resources"]
    assert resources["Migrations"]["Type"] == "Custom::Migrations"
    for name in ("ConsumerFunction", "ConsumerFunctionQueue", "ReconcilerFunction"):
        assert "Migrations" in _dependencies(resources, name), name
    # No cycle: the migrations need neither the consumer nor its queue.
    before_migrations = _dependencies(resources, "Migrations")
    assert not {"ConsumerFunction", "ConsumerFunctionQueue", "EventsQueue"} & before_migrations
    # Its log group exists before the function's first run could create it.
    assert {"MigrationsFunction", "MigrationsLogGroup"} <= before_migrations


def test_every_deploy_that_changes_code_or_schema_updates_the_migrations() -> None:
    migrations = properties(template.load(), "Migrations")
    assert migrations["ServiceToken"] == {"Fn::GetAtt": ["MigrationsFunction", "Arn"]}
    # The layer's version changes with shared/ and db/migrations (hookline.sam.build).
    assert migrations["HooklineLayer"] == {"Ref": "HooklineLayer"}
    assert migrations["Schema"] == {"Ref": "DatabaseSchema"}
    assert migrations["DatabaseSecretName"] == {"Ref": "DatabaseSecretName"}
    # A function that cannot answer fails the deploy in minutes, not CloudFormation's hour,
    # and only after the function itself had its whole timeout.
    function = properties(template.load(), "MigrationsFunction")
    assert function["Timeout"] < migrations["ServiceTimeout"] <= 600
    # CloudFormation invokes it asynchronously: a Lambda retry would migrate out of turn.
    assert function["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


def test_migrations_reach_the_database_the_way_the_consumer_does() -> None:
    document = template.load()
    consumer, migrations = (
        properties(document, name) for name in ("ConsumerFunction", "MigrationsFunction")
    )
    assert migrations["VpcConfig"] == consumer["VpcConfig"]
    for name in ("DATABASE_URL", "DATABASE_SECRET_NAME", "DATABASE_SCHEMA"):
        variables = migrations["Environment"]["Variables"]
        assert variables[name] == consumer["Environment"]["Variables"][name], name
    outputs = document["Outputs"]
    assert outputs["MigrationsFunctionName"]["Value"] == {"Ref": "MigrationsFunction"}
