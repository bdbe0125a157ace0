"""The receiver's AWS resources in moto, built from template.yaml's own properties."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from hookline import template

from tests.support.signers import SECRETS

ROOT = Path(__file__).resolve().parents[2]
STACK_NAME = "hookline-test"


@dataclass
class Stack:
    sqs: Any
    secretsmanager: Any
    queue_url: str
    dlq_url: str
    secret_name: str
    environment: dict[str, str]
    dynamodb: Any = None
    queue_arn: str = ""
    idempotency_table: str = ""
    consumer_environment: dict[str, str] = field(default_factory=dict)

    def messages(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        """Every message on the queue, with system attributes, left in place."""
        url = queue_url or self.queue_url
        found: dict[str, dict[str, Any]] = {}
        for _ in range(20):
            answer = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                VisibilityTimeout=0,
            )
            batch = answer.get("Messages", [])
            if not batch:
                break
            new = [m for m in batch if m["MessageId"] not in found]
            found.update({m["MessageId"]: m for m in batch})
            if not new:
                break
        return list(found.values())

    def put_secret(self, document: dict[str, Any]) -> None:
        self.secretsmanager.put_secret_value(
            SecretId=self.secret_name, SecretString=json.dumps(document)
        )


def default_secret_document() -> dict[str, list[str]]:
    return {provider: list(secrets) for provider, secrets in SECRETS.items()}


def create_stack() -> Stack:
    """Queues, secret and the receiver's environment, as template.yaml declares them."""
    document = template.load()
    sqs: Any = boto3.client("sqs")
    secretsmanager: Any = boto3.client("secretsmanager")
    resolver = template.Resolver(document, stack_name=STACK_NAME)
    dlq_url = sqs.create_queue(
        QueueName=f"{STACK_NAME}-EventsDLQ.fifo",
        Attributes=template.sqs_attributes(document, "EventsDLQ", resolver),
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    resolver = template.Resolver(
        document, stack_name=STACK_NAME, attributes={("EventsDLQ", "Arn"): dlq_arn}
    )
    queue_url = sqs.create_queue(
        QueueName=f"{STACK_NAME}-EventsQueue.fifo",
        Attributes=template.sqs_attributes(document, "EventsQueue", resolver),
    )["QueueUrl"]
    resolver = template.Resolver(
        document,
        stack_name=STACK_NAME,
        refs={"EventsQueue": queue_url, "EventsDLQ": dlq_url},
        attributes={("EventsDLQ", "Arn"): dlq_arn},
    )
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    dynamodb: Any = boto3.client("dynamodb")
    table_name = f"{STACK_NAME}-IdempotencyTable"
    arguments, ttl = template.dynamodb_table(document, "IdempotencyTable", resolver)
    dynamodb.create_table(TableName=table_name, **arguments)
    if ttl is not None:
        dynamodb.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)
    resolver = template.Resolver(
        document,
        stack_name=STACK_NAME,
        refs={"EventsQueue": queue_url, "EventsDLQ": dlq_url, "IdempotencyTable": table_name},
        attributes={("EventsDLQ", "Arn"): dlq_arn, ("EventsQueue", "Arn"): queue_arn},
    )
    environment = template.function_environment(document, "ReceiverFunction", resolver)
    consumer_environment = template.function_environment(document, "ConsumerFunction", resolver)
    secret_name = environment["SECRETS_NAME"]
    secretsmanager.create_secret(
        Name=secret_name, SecretString=json.dumps(default_secret_document())
    )
    return Stack(
        sqs,
        secretsmanager,
        queue_url,
        dlq_url,
        secret_name,
        environment,
        dynamodb=dynamodb,
        queue_arn=queue_arn,
        idempotency_table=table_name,
        consumer_environment=consumer_environment,
    )


def load_function(name: str) -> ModuleType:
    """functions/<name>/app.py as Lambda loads it (every function's module is `app`)."""
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"hookline_function_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
