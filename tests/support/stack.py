"""The stack's AWS resources in moto, built from template.yaml's own properties."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from hookline import template
from hookline.local import resources

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
    reconciler_environment: dict[str, str] = field(default_factory=dict)

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
    """Queues, table, secret and the functions' environments, as template.yaml declares them.

    Built by the local stack's own resource code, so the tests and `hookline
    local` cannot disagree about what the template means.
    """
    document = template.load()
    sqs: Any = boto3.client("sqs")
    secretsmanager: Any = boto3.client("secretsmanager")
    dynamodb: Any = boto3.client("dynamodb")
    secret_name = f"{STACK_NAME}/webhook-secrets"
    created = resources.create(
        document,
        sqs=sqs,
        dynamodb=dynamodb,
        secretsmanager=secretsmanager,
        stack_name=STACK_NAME,
        region="us-east-1",
        secret_strings={secret_name: json.dumps(default_secret_document())},
    )
    resolver = created.resolver(document)
    environment = template.function_environment(document, "ReceiverFunction", resolver)
    assert environment["SECRETS_NAME"] == secret_name
    return Stack(
        sqs,
        secretsmanager,
        created.queues["EventsQueue"],
        created.queues["EventsDLQ"],
        secret_name,
        environment,
        dynamodb=dynamodb,
        queue_arn=created.attributes[("EventsQueue", "Arn")],
        idempotency_table=created.tables["IdempotencyTable"],
        consumer_environment=template.function_environment(document, "ConsumerFunction", resolver),
        reconciler_environment=template.function_environment(
            document, "ReconcilerFunction", resolver
        ),
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
