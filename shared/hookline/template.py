"""Reading template.yaml: the single source of truth for wiring.

Tests and the local stack build their resources from the template's own
properties through this module, so the two cannot drift apart silently.
Only the intrinsic functions the template uses are resolved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"

# CloudFormation property name → SQS attribute name, for the properties we use.
_SQS_ATTRIBUTES = {
    "FifoQueue": "FifoQueue",
    "ContentBasedDeduplication": "ContentBasedDeduplication",
    "DeduplicationScope": "DeduplicationScope",
    "FifoThroughputLimit": "FifoThroughputLimit",
    "VisibilityTimeout": "VisibilityTimeout",
    "MessageRetentionPeriod": "MessageRetentionPeriod",
    "MaximumMessageSize": "MaximumMessageSize",
    "DelaySeconds": "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled": "SqsManagedSseEnabled",
    "RedrivePolicy": "RedrivePolicy",
}


class _CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref x` into `{"Ref": x}` and `!Sub s` into `{"Fn::Sub": s}`."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    document = yaml.load(path.read_text(), Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return document


@dataclass
class Resolver:
    """Resolves the intrinsics the template uses, given what a deployment would know."""

    template: Mapping[str, Any]
    stack_name: str = "hookline-local"
    region: str = "us-east-1"
    parameters: Mapping[str, str] = field(default_factory=dict)
    refs: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # For files a person fills in (events/env.json): `<Resource.Attribute>` for unknown ones.
    placeholder_attributes: bool = False

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        declared = self.template.get("Parameters", {}).get(name)
        if declared is not None and "Default" in declared:
            return str(declared["Default"])
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"cannot resolve Ref {name}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.ref(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            resource, attribute = value["Fn::GetAtt"]
            if self.placeholder_attributes:
                return self.attributes.get((resource, attribute), f"<{resource}.{attribute}>")
            return self.attributes[(resource, attribute)]
        if set(value) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: self.ref(m.group(1)), value["Fn::Sub"])
        return {key: self.resolve(item) for key, item in value.items()}


def resource(template: Mapping[str, Any], logical_id: str) -> Mapping[str, Any]:
    found = template.get("Resources", {}).get(logical_id)
    if found is None:
        raise KeyError(f"template.yaml has no resource {logical_id}")
    return dict(found)


def sqs_attributes(
    template: Mapping[str, Any], logical_id: str, resolver: Resolver
) -> dict[str, str]:
    """The SQS CreateQueue attributes equivalent to a template queue's properties."""
    properties = resolver.resolve(resource(template, logical_id).get("Properties", {}))
    unknown = set(properties) - set(_SQS_ATTRIBUTES) - {"QueueName", "Tags", "KmsMasterKeyId"}
    if unknown:
        raise ValueError(f"{logical_id}: no SQS attribute mapping for {sorted(unknown)}")
    attributes: dict[str, str] = {}
    for name, attribute in _SQS_ATTRIBUTES.items():
        if name not in properties:
            continue
        value = properties[name]
        if name == "RedrivePolicy":
            value = {**value, "maxReceiveCount": int(value["maxReceiveCount"])}
        if isinstance(value, dict):
            attributes[attribute] = json.dumps(value)
        elif isinstance(value, bool):
            attributes[attribute] = "true" if value else "false"
        else:
            attributes[attribute] = str(value)
    return attributes


def function_environment(
    template: Mapping[str, Any], logical_id: str, resolver: Resolver
) -> dict[str, str]:
    """A function's environment: Globals merged with its own, intrinsics resolved."""
    global_env = template.get("Globals", {}).get("Function", {}).get("Environment", {})
    own_env = resource(template, logical_id).get("Properties", {}).get("Environment", {})
    merged = {**global_env.get("Variables", {}), **own_env.get("Variables", {})}
    return {name: str(resolver.resolve(value)) for name, value in merged.items()}


def dynamodb_table(
    template: Mapping[str, Any], logical_id: str, resolver: Resolver
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """CreateTable arguments and the UpdateTimeToLive specification of a template table."""
    properties = dict(resolver.resolve(resource(template, logical_id).get("Properties", {})))
    ttl = properties.pop("TimeToLiveSpecification", None)
    sse = properties.pop("SSESpecification", None)
    known = {"BillingMode", "AttributeDefinitions", "KeySchema", "TableName"}
    unknown = set(properties) - known
    if unknown:
        raise ValueError(f"{logical_id}: no DynamoDB mapping for {sorted(unknown)}")
    arguments: dict[str, Any] = {
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if sse is not None:
        arguments["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled"))}
    return arguments, ttl
