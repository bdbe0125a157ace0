"""template.yaml's queues, tables and secret, created on an AWS endpoint (moto).

Every property comes from the template through `hookline.template`; only the
physical names are ours (`{stack}-{LogicalId}`, as CloudFormation would prefix).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from hookline import template
from hookline.errors import ConfigurationError, InvalidSecret
from hookline.providers import PROVIDER_NAMES
from hookline.secrets import check_document

QUEUE_TYPE = "AWS::SQS::Queue"
TABLE_TYPE = "AWS::DynamoDB::Table"
SECRET_TYPE = "AWS::SecretsManager::Secret"  # noqa: S105 - a resource type


@dataclass
class Resources:
    """Physical ids of what was created, in the shape the template's intrinsics need."""

    stack_name: str
    region: str
    parameters: Mapping[str, str]
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    def resolver(self, document: Mapping[str, Any]) -> template.Resolver:
        return template.Resolver(
            document,
            stack_name=self.stack_name,
            region=self.region,
            parameters=self.parameters,
            # What the local stack does not create (the API, layers, functions) is
            # referred to by its logical id; the wiring maps layers to their code.
            refs={**{name: name for name in document.get("Resources", {})}, **self.refs},
            attributes=self.attributes,
        )


def _of_type(document: Mapping[str, Any], kind: str) -> list[str]:
    return [name for name, found in document.get("Resources", {}).items() if found["Type"] == kind]


def _dead_letter_targets(document: Mapping[str, Any]) -> set[str]:
    targets = set()
    for name in _of_type(document, QUEUE_TYPE):
        policy = template.resource(document, name).get("Properties", {}).get("RedrivePolicy")
        if policy:
            target = policy.get("deadLetterTargetArn", {}).get("Fn::GetAtt", [None])[0]
            if target:
                targets.add(str(target))
    return targets


def _create_queues(sqs: Any, document: Mapping[str, Any], created: Resources) -> None:
    names = _of_type(document, QUEUE_TYPE)
    targets = _dead_letter_targets(document)
    # Dead-letter queues first: the others' RedrivePolicy names their ARN.
    for logical_id in sorted(names, key=lambda n: n not in targets):
        attributes = template.sqs_attributes(document, logical_id, created.resolver(document))
        suffix = ".fifo" if attributes.get("FifoQueue") == "true" else ""
        url = sqs.create_queue(
            QueueName=f"{created.stack_name}-{logical_id}{suffix}", Attributes=attributes
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        created.refs[logical_id] = url
        created.queues[logical_id] = url
        created.attributes[(logical_id, "Arn")] = arn
        created.attributes[(logical_id, "QueueName")] = url.rsplit("/", 1)[-1]
        created.attributes[(logical_id, "QueueUrl")] = url


def _create_tables(dynamodb: Any, document: Mapping[str, Any], created: Resources) -> None:
    for logical_id in _of_type(document, TABLE_TYPE):
        name = f"{created.stack_name}-{logical_id}"
        arguments, ttl = template.dynamodb_table(document, logical_id, created.resolver(document))
        try:
            dynamodb.create_table(TableName=name, **arguments)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
        if ttl is not None:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        created.refs[logical_id] = name
        created.tables[logical_id] = name
        arn = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
        created.attributes[(logical_id, "Arn")] = arn


def _create_secrets(
    secretsmanager: Any,
    document: Mapping[str, Any],
    created: Resources,
    secret_strings: Mapping[str, str],
) -> None:
    for logical_id in _of_type(document, SECRET_TYPE):
        properties = created.resolver(document).resolve(
            template.resource(document, logical_id).get("Properties", {})
        )
        name = str(properties["Name"])
        value = secret_strings.get(name, str(properties.get("SecretString", "{}")))
        try:
            arn = secretsmanager.create_secret(Name=name, SecretString=value)["ARN"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceExistsException":
                raise
            arn = secretsmanager.put_secret_value(SecretId=name, SecretString=value)["ARN"]
        created.refs[logical_id] = arn
        created.secrets[logical_id] = name


def create(
    document: Mapping[str, Any],
    *,
    sqs: Any,
    dynamodb: Any,
    secretsmanager: Any,
    stack_name: str,
    region: str,
    parameters: Mapping[str, str] | None = None,
    secret_strings: Mapping[str, str] | None = None,
) -> Resources:
    """Create (or bring in line) every queue, table and secret template.yaml declares.

    `secret_strings` replaces a secret's SecretString by secret name (the
    template's webhook secret starts empty; the local stack loads a file).
    """
    created = Resources(stack_name, region, dict(parameters or {}))
    _create_queues(sqs, document, created)
    _create_tables(dynamodb, document, created)
    _create_secrets(secretsmanager, document, created, secret_strings or {})
    return created


def secret_document(path: Path, providers: Sequence[str] = PROVIDER_NAMES) -> str:
    """A secrets file's text, checked by the receiver's own rule (hookline.secrets).

    ConfigurationError naming the file, and each provider whose entry is
    unusable, so `hookline local` refuses to start rather than answer 503.
    """
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"cannot read secrets file {path}: {error}") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"secrets file {path} must hold a JSON object")
    try:
        check_document(document, providers)
    except InvalidSecret as error:
        raise ConfigurationError(f"secrets file {path}: {error}") from None
    return json.dumps(document)
