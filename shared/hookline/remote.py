"""Reaching a stack's reconciler, for operator commands: the same Lambda Invoke call
against AWS (`--stack NAME`, with the operator's credentials, needing only
lambda:InvokeFunction and cloudformation:DescribeStacks) or the local stack."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from hookline.errors import ConfigurationError

RECONCILER = "ReconcilerFunction"
# The stack output naming the deployed reconciler (template.yaml Outputs).
RECONCILER_OUTPUT = "ReconcilerFunctionName"

Invoke = Callable[[Mapping[str, Any]], dict[str, Any]]


def _invoker(client: Any, function_name: str) -> Invoke:
    def invoke(payload: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = client.invoke(
                FunctionName=function_name, Payload=json.dumps(payload).encode()
            )
        except (BotoCoreError, ClientError) as error:
            raise ConfigurationError(f"cannot invoke the reconciler: {error}") from error
        answer: Any = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            message = answer.get("errorMessage") if isinstance(answer, dict) else answer
            raise ConfigurationError(f"the reconciler failed: {message}")
        if not isinstance(answer, dict):
            raise ConfigurationError("the reconciler answered something unexpected")
        return answer

    return invoke


def deployed(stack_name: str) -> Invoke:
    try:
        stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as error:
        raise ConfigurationError(f"cannot read stack {stack_name}: {error}") from error
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if RECONCILER_OUTPUT not in outputs:
        raise ConfigurationError(f"stack {stack_name} has no {RECONCILER_OUTPUT} output")
    return _invoker(boto3.client("lambda"), outputs[RECONCILER_OUTPUT])


def local(state: Mapping[str, Any]) -> Invoke:
    from hookline.local.stack import aws_clients

    client = aws_clients(state["lambda_url"], state["region"], ("lambda",))["lambda"]
    return _invoker(client, RECONCILER)
