"""Reaching a stack's functions, for operator commands: the same Lambda Invoke call
against AWS (`--stack NAME`, with the operator's credentials, needing only
lambda:InvokeFunction and cloudformation:DescribeStacks) or the local stack.

Every failure is a HooklineError whose class gives the CLI's exit code: a stack
that does not exist is NotFound, missing credentials or region a
ConfigurationError, an endpoint that does not answer ServiceUnavailable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from hookline.errors import (
    ConfigurationError,
    HooklineError,
    NotFound,
    ServiceUnavailable,
)

RECONCILER = "ReconcilerFunction"
# The stack outputs naming the deployed functions and the dashboard (template.yaml Outputs).
RECONCILER_OUTPUT = "ReconcilerFunctionName"
MIGRATIONS_OUTPUT = "MigrationsFunctionName"
DASHBOARD_OUTPUT = "DashboardUrl"

# An invoke waits for the function's answer (a migration may take minutes; Lambda
# allows 15) and is never retried: an operator action or a migration runs once.
INVOKE_CONFIG = Config(
    connect_timeout=10, read_timeout=900, retries={"total_max_attempts": 1, "mode": "standard"}
)

Invoke = Callable[[Mapping[str, Any]], dict[str, Any]]

# Error codes AWS answers when the caller's identity or permissions are the problem.
_DENIED = (
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "AuthFailure",
)
_BUSY = ("Throttling", "ThrottlingException", "TooManyRequestsException", "ServiceException")


class FunctionFailed(HooklineError):
    """The invoked function raised instead of answering (a bug or a timeout there)."""


def aws_failure(error: Exception, doing: str) -> HooklineError:
    """One line for a botocore error, of the class that says what the operator must do."""
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return ConfigurationError(
            f"{doing}: no AWS credentials: run `aws configure` or `aws sso login`, "
            "or pass --profile"
        )
    if isinstance(error, NoRegionError):
        return ConfigurationError(
            f"{doing}: no AWS region: pass --region, set AWS_REGION, or give the profile one"
        )
    if isinstance(error, ProfileNotFound):
        return ConfigurationError(f"{doing}: {error}")
    if isinstance(error, BotoConnectionError):
        return ServiceUnavailable(f"{doing}: {error}")
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        message = str(details.get("Message", "")) or code
        if code in _DENIED:
            return ConfigurationError(f"{doing}: {code}: {message}")
        if code == "ResourceNotFoundException" or "does not exist" in message:
            return NotFound(f"{doing}: {message}")
        if code in _BUSY:
            return ServiceUnavailable(f"{doing}: {code}: {message}")
        return HooklineError(f"{doing}: {code}: {message}")
    return ServiceUnavailable(f"{doing}: {error}")


def _invoker(client: Any, function_name: str, label: str = "the reconciler") -> Invoke:
    def invoke(payload: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = client.invoke(
                FunctionName=function_name, Payload=json.dumps(payload).encode()
            )
        except (BotoCoreError, ClientError) as error:
            raise aws_failure(error, f"cannot invoke {label}") from error
        answer: Any = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            message = answer.get("errorMessage") if isinstance(answer, dict) else answer
            raise FunctionFailed(f"{label} failed: {message}")
        if not isinstance(answer, dict):
            raise FunctionFailed(f"{label} answered something unexpected")
        return answer

    return invoke


def aws_session(profile: str | None, region: str | None) -> boto3.Session:
    """botocore's own resolution (the flag, AWS_DEFAULT_REGION, the profile's region),
    then AWS_REGION, which the aws CLI reads and botocore does not."""
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        if session.region_name is None and os.environ.get("AWS_REGION"):
            session = boto3.Session(profile_name=profile, region_name=os.environ["AWS_REGION"])
    except BotoCoreError as error:
        raise aws_failure(error, "cannot use AWS") from error
    return session


@dataclass(frozen=True)
class DeployedStack:
    """A deployed stack's outputs, read once, and the session that read them."""

    name: str
    session: boto3.Session
    outputs: Mapping[str, str]

    def output(self, key: str) -> str:
        if key not in self.outputs:
            raise ConfigurationError(
                f"stack {self.name} has no {key} output (deployed before it existed? deploy again)"
            )
        return self.outputs[key]

    def invoker(self, output: str = RECONCILER_OUTPUT, label: str = "the reconciler") -> Invoke:
        function = self.output(output)
        try:
            client = self.session.client("lambda", config=INVOKE_CONFIG)
        except BotoCoreError as error:
            raise aws_failure(error, f"cannot invoke {label}") from error
        return _invoker(client, function, label)


def stack(
    stack_name: str, *, profile: str | None = None, region: str | None = None
) -> DeployedStack:
    """DescribeStacks once: the outputs every --stack command needs."""
    session = aws_session(profile, region)
    where = f" in {session.region_name}" if session.region_name else ""
    try:
        cloudformation = session.client("cloudformation")
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as error:
        raise aws_failure(error, f"cannot read stack {stack_name}{where}") from error
    if not stacks:
        raise NotFound(f"cannot read stack {stack_name}{where}: it does not exist")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return DeployedStack(stack_name, session, outputs)


def deployed(
    stack_name: str,
    output: str = RECONCILER_OUTPUT,
    *,
    profile: str | None = None,
    region: str | None = None,
    label: str = "the reconciler",
) -> Invoke:
    """Invoke the function a deployed stack names in `output`."""
    return stack(stack_name, profile=profile, region=region).invoker(output, label)


def local_client(state: Mapping[str, Any]) -> Any:
    """The Lambda client for the local stack's Lambda API, configured as against AWS:
    the functions' short read timeout and retries would send a slow action twice."""
    from hookline.local.stack import aws_clients

    return aws_clients(state["lambda_url"], state["region"], ("lambda",), INVOKE_CONFIG)["lambda"]


def local(state: Mapping[str, Any]) -> Invoke:
    client = local_client(state)
    return _invoker(client, RECONCILER, f"the local stack's reconciler ({state['lambda_url']})")
