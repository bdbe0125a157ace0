"""Reaching a stack's functions, for operator commands: the same Lambda Invoke call
against AWS (`--stack NAME`, with the operator's credentials, needing only
lambda:InvokeFunction and cloudformation:DescribeStacks) or the local stack."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hookline.errors import ConfigurationError

RECONCILER = "ReconcilerFunction"
# The stack outputs naming the deployed functions (template.yaml Outputs).
RECONCILER_OUTPUT = "ReconcilerFunctionName"
MIGRATIONS_OUTPUT = "MigrationsFunctionName"

# An invoke waits for the function's answer (a migration may take minutes; Lambda
# allows 15) and is never retried: an operator action or a migration runs once.
INVOKE_CONFIG = Config(
    connect_timeout=10, read_timeout=900, retries={"total_max_attempts": 1, "mode": "standard"}
)

Invoke = Callable[[Mapping[str, Any]], dict[str, Any]]


def _invoker(client: Any, function_name: str, label: str = "the reconciler") -> Invoke:
    def invoke(payload: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = client.invoke(
                FunctionName=function_name, Payload=json.dumps(payload).encode()
            )
        except (BotoCoreError, ClientError) as error:
            raise ConfigurationError(f"cannot invoke {label}: {error}") from error
        answer: Any = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            message = answer.get("errorMessage") if isinstance(answer, dict) else answer
            raise ConfigurationError(f"{label} failed: {message}")
        if not isinstance(answer, dict):
            raise ConfigurationError(f"{label} answered something unexpected")
        return answer

    return invoke


def aws_session(profile: str | None, region: str | None) -> boto3.Session:
    """botocore's own resolution (the flag, AWS_DEFAULT_REGION, the profile's region),
    then AWS_REGION, which the aws CLI reads and botocore does not."""
    session = boto3.Session(profile_name=profile, region_name=region)
    if session.region_name is None and os.environ.get("AWS_REGION"):
        session = boto3.Session(profile_name=profile, region_name=os.environ["AWS_REGION"])
    return session


def deployed(
    stack_name: str,
    output: str = RECONCILER_OUTPUT,
    *,
    profile: str | None = None,
    region: str | None = None,
    label: str = "the reconciler",
) -> Invoke:
    """Invoke the function a deployed stack names in `output`."""
    try:
        session = aws_session(profile, region)
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as error:
        raise ConfigurationError(f"cannot read stack {stack_name}: {error}") from error
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if output not in outputs:
        raise ConfigurationError(
            f"stack {stack_name} has no {output} output (deployed before it existed? deploy again)"
        )
    return _invoker(session.client("lambda", config=INVOKE_CONFIG), outputs[output], label)


def local(state: Mapping[str, Any]) -> Invoke:
    from hookline.local.stack import aws_clients

    client = aws_clients(state["lambda_url"], state["region"], ("lambda",))["lambda"]
    return _invoker(client, RECONCILER)
