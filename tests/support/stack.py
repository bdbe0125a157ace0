"""The receiver's AWS resources in moto, built from template.yaml's own properties."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
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
    environment = template.function_environment(document, "ReceiverFunction", resolver)
    secret_name = environment["SECRETS_NAME"]
    secretsmanager.create_secret(
        Name=secret_name, SecretString=json.dumps(default_secret_document())
    )
    return Stack(sqs, secretsmanager, queue_url, dlq_url, secret_name, environment)


def load_function(name: str) -> ModuleType:
    """functions/<name>/app.py as Lambda loads it (every function's module is `app`)."""
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"hookline_function_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
