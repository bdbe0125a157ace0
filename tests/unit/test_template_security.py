"""What CloudFormation deploys grants each function only what its code uses, and keeps data.

The template is read after the SAM transform (`hookline.sam.translate`, offline),
so the roles, managed policies and event source mappings SAM adds are checked
too, not only what template.yaml spells out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hookline import sam

# Services whose actions reach events, secrets or idempotency records.
DATA_SERVICES = ("sqs", "dynamodb", "secretsmanager", "kms", "s3")
# A mapping decides which function receives a queue's messages.
MAPPING_ACTIONS = {
    "lambda:CreateEventSourceMapping",
    "lambda:UpdateEventSourceMapping",
    "lambda:DeleteEventSourceMapping",
}
# AWS managed policies known to grant no data access: logs, traces, and a VPC
# function's network interfaces. Any other could grant anything (e.g. SAM's
# AWSLambdaSQSQueueExecutionRole: receive and delete on every queue).
MANAGED_POLICIES_WITHOUT_DATA = {
    "AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess",
    "AWSLambdaVPCAccessExecutionRole",
}
STATEFUL_TYPES = {
    "AWS::SQS::Queue",
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
}
# Secrets Manager appends "-" and six random characters to a secret's name.
SECRET_SUFFIX = "-??????"

# Every grant each function has, as (action, resource): the code's own calls.
# Changing what a function calls means changing this list, on purpose.
EXPECTED_GRANTS = {
    "ReceiverFunction": {
        ("sqs:SendMessage", "EventsQueue"),
        ("sqs:GetQueueAttributes", "EventsQueue"),  # /health
        ("secretsmanager:GetSecretValue", "WebhookSecret"),
    },
    "ConsumerFunction": {
        # Lambda's SQS poller, with the consumer's role.
        ("sqs:ReceiveMessage", "EventsQueue"),
        ("sqs:DeleteMessage", "EventsQueue"),
        ("sqs:GetQueueAttributes", "EventsQueue"),
        ("sqs:ChangeMessageVisibility", "EventsQueue"),  # retry backoff
        ("dynamodb:GetItem", "IdempotencyTable"),
        ("dynamodb:PutItem", "IdempotencyTable"),
        ("dynamodb:UpdateItem", "IdempotencyTable"),
        ("dynamodb:DeleteItem", "IdempotencyTable"),
        ("secretsmanager:GetSecretValue", "WebhookSecret"),  # Mercado Pago's token
        ("secretsmanager:GetSecretValue", "secret:${DatabaseSecretName}-??????"),
    },
    "ReconcilerFunction": {
        ("sqs:SendMessage", "EventsQueue"),
        ("sqs:GetQueueAttributes", "EventsQueue"),
        ("sqs:ReceiveMessage", "EventsDLQ"),
        ("sqs:DeleteMessage", "EventsDLQ"),
        ("sqs:GetQueueAttributes", "EventsDLQ"),
        ("secretsmanager:GetSecretValue", "WebhookSecret"),  # Stripe's and Square's keys
        ("secretsmanager:GetSecretValue", "secret:${DatabaseSecretName}-??????"),
        ("dynamodb:GetItem", "IdempotencyTable"),  # the breaker's state
        ("dynamodb:PutItem", "IdempotencyTable"),
        ("dynamodb:DeleteItem", "IdempotencyTable"),
        # IAM has no resource-level permission for these two; neither reads data.
        ("lambda:ListEventSourceMappings", "*"),
        ("cloudwatch:GetMetricStatistics", "*"),
        ("lambda:UpdateEventSourceMapping", "event-source-mapping:${ConsumerFunctionQueue}"),
    },
    # The Migrations custom resource; it answers CloudFormation through a presigned URL.
    "MigrationsFunction": {
        ("secretsmanager:GetSecretValue", "secret:${DatabaseSecretName}-??????"),
    },
}


@dataclass(frozen=True)
class Statement:
    owner: str
    body: Mapping[str, Any]
    conditions: tuple[str, ...]  # the Fn::If conditions it sits under


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    return sam.translate()


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _no_value(value: Any) -> bool:
    return isinstance(value, dict) and value.get("Ref") == "AWS::NoValue"


def _branches(
    value: Any, conditions: tuple[str, ...] = ()
) -> Iterator[tuple[Any, tuple[str, ...]]]:
    """Each value an Fn::If may take, with the conditions leading to it (NoValue dropped)."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        yield from _branches(when_true, (*conditions, condition))
        yield from _branches(when_false, (*conditions, f"not {condition}"))
    elif not _no_value(value):
        yield value, conditions


def _policy_documents(
    name: str, resource: Mapping[str, Any]
) -> Iterator[tuple[Mapping[str, Any], tuple[str, ...]]]:
    """Each policy document, with the conditions a whole policy sits under."""
    properties = resource.get("Properties", {})
    if resource["Type"] == "AWS::IAM::Role":
        for policy, outer in _branches(properties.get("Policies", [])):
            for item in _as_list(policy):
                for document, inner in _branches(item):
                    yield document["PolicyDocument"], (*outer, *inner)
    elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        yield properties["PolicyDocument"], ()


def statements(template: Mapping[str, Any]) -> Iterator[Statement]:
    for name, resource in template["Resources"].items():
        for document, outer in _policy_documents(name, resource):
            for item in _as_list(document["Statement"]):
                for body, conditions in _branches(item):
                    yield Statement(name, body, (*outer, *conditions))


def render(resource: Any) -> str:
    """A policy Resource as text, intrinsics kept readable: `*` stays `*`."""
    if isinstance(resource, str):
        return resource
    if isinstance(resource, dict) and set(resource) == {"Fn::GetAtt"}:
        return str(resource["Fn::GetAtt"][0])
    if isinstance(resource, dict) and set(resource) == {"Ref"}:
        return str(resource["Ref"])
    if isinstance(resource, dict) and set(resource) == {"Fn::Sub"}:
        text, variables = [*_as_list(resource["Fn::Sub"]), {}][:2]
        for key, value in variables.items():
            text = text.replace("${" + key + "}", render(value))
        # The account-local part names the resource; the prefix is the same everywhere.
        return str(text).rsplit("${AWS::AccountId}:", 1)[-1]
    return repr(resource)


def is_wildcard(resource: str) -> bool:
    if resource.startswith("secret:") and resource.endswith(SECRET_SUFFIX):
        resource = resource.removesuffix(SECRET_SUFFIX)
    return "*" in resource or "?" in resource


def is_data_action(action: str) -> bool:
    service = action.split(":", 1)[0]
    return action == "*" or service in DATA_SERVICES or action in MAPPING_ACTIONS


def grants(statement: Statement) -> Iterator[tuple[str, str]]:
    for action in _as_list(statement.body.get("Action", [])):
        for resource in _as_list(statement.body.get("Resource", [])):
            for value, _ in _branches(resource):
                yield str(action), render(value)


def test_no_data_action_on_a_wildcard_resource(translated: dict[str, Any]) -> None:
    found = []
    for statement in statements(translated):
        assert statement.body.get("Effect") == "Allow", statement
        # NotAction / NotResource grant everything else: never on these roles.
        assert not {"NotAction", "NotResource"} & set(statement.body), statement
        for action, resource in grants(statement):
            if is_data_action(action) and (is_wildcard(resource) or "*" in action):
                found.append(f"{statement.owner}: {action} on {resource}")
    assert found == []


def test_no_managed_policy_that_could_grant_data(translated: dict[str, Any]) -> None:
    found = []
    for name, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for arn in resource["Properties"].get("ManagedPolicyArns", []):
            for value, _ in _branches(arn):
                policy = render(value).rsplit("/", 1)[-1]
                if policy not in MANAGED_POLICIES_WITHOUT_DATA:
                    found.append(f"{name}: {policy}")
    assert found == []


def test_stateful_resources_are_retained_on_delete_and_replace(translated: dict[str, Any]) -> None:
    found = []
    for name, resource in translated["Resources"].items():
        if resource["Type"] not in STATEFUL_TYPES:
            continue
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            if resource.get(policy) != "Retain":
                found.append(f"{name} ({resource['Type']}): {policy} {resource.get(policy)}")
    assert found == []


def test_each_function_has_its_own_role_granting_what_its_code_calls(
    translated: dict[str, Any],
) -> None:
    resources = translated["Resources"]
    functions = {n: r for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert set(functions) == set(EXPECTED_GRANTS)
    roles = {name: function["Properties"]["Role"] for name, function in functions.items()}
    assert all(set(role) == {"Fn::GetAtt"} for role in roles.values()), roles
    role_names = {name: role["Fn::GetAtt"][0] for name, role in roles.items()}
    assert len(set(role_names.values())) == len(role_names), "functions share a role"
    for function, role in role_names.items():
        granted = {
            grant
            for statement in statements(translated)
            if statement.owner == role
            for grant in grants(statement)
        }
        assert granted == EXPECTED_GRANTS[function], function


def test_the_breaker_may_switch_only_the_consumers_mapping(translated: dict[str, Any]) -> None:
    # The reconciler's grant names SAM's mapping for ConsumerFunction's `Queue` event.
    mapping = translated["Resources"]["ConsumerFunctionQueue"]
    assert mapping["Type"] == "AWS::Lambda::EventSourceMapping"
    assert mapping["Properties"]["FunctionName"] == {"Ref": "ConsumerFunction"}
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    switches = [
        statement
        for statement in statements(translated)
        if "lambda:UpdateEventSourceMapping" in _as_list(statement.body["Action"])
    ]
    assert [render(s.body["Resource"]) for s in switches] == [
        "event-source-mapping:${ConsumerFunctionQueue}"
    ]


def test_no_statement_names_a_database_secret_that_is_not_configured(
    translated: dict[str, Any],
) -> None:
    condition = translated["Conditions"]["HasDatabaseSecret"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "DatabaseSecretName"}, ""]}]}
    naming = [
        statement
        for statement in statements(translated)
        if any("DatabaseSecretName" in resource for _, resource in grants(statement))
    ]
    assert {statement.owner for statement in naming} == {
        "ConsumerRole",
        "ReconcilerRole",
        "MigrationsRole",
    }
    for statement in naming:
        assert statement.conditions == ("HasDatabaseSecret",), statement
        assert render(statement.body["Resource"]) == "secret:${DatabaseSecretName}-??????"
    # A name, never an ARN (whose own suffix would then be followed by another).
    pattern = translated["Parameters"]["DatabaseSecretName"]["AllowedPattern"]
    assert re.fullmatch(pattern, "prod/hookline-db")
    assert re.fullmatch(pattern, "")
    assert not re.fullmatch(pattern, "arn:aws:secretsmanager:eu-west-1:1:secret:db-AbCdEf")


def test_every_function_logs_to_its_own_retained_log_group(translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    groups = {
        str(resource["Properties"]["LogGroupName"]["Fn::Sub"]): resource
        for resource in resources.values()
        if resource["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" in resource["Properties"]
    }
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::Function":
            group = groups[f"/aws/lambda/${{{name}}}"]
            assert group["Properties"]["RetentionInDays"] > 0, name


def test_database_url_is_hidden_and_for_development_only(translated: dict[str, Any]) -> None:
    parameter = translated["Parameters"]["DatabaseUrl"]
    assert parameter["NoEcho"] is True
    assert parameter["Description"].startswith("Development only")
    assert "DatabaseSecretName" in parameter["Description"]
