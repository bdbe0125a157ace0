"""Reading template.yaml: the single source of truth for wiring.

Tests and the local stack build their resources from the template's own
properties through this module, so the two cannot drift apart silently.
The file is read with cfn-lint's CloudFormation loader (the one `sam validate
--lint` uses), so short and long intrinsic forms load alike; `Resolver`
evaluates the intrinsics a local deployment can know.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from hookline.errors import ConfigurationError

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


class TemplateError(ConfigurationError, ValueError):
    """template.yaml cannot be read, or one of its conditions is not true or false.

    A ConfigurationError so the CLI prints its one line and exits 3; a ValueError
    because that is what reading a template raised before.
    """


def load(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain dicts, lists and scalars, intrinsics in their long form.

    `!Ref x` is `{"Ref": x}`, `!Condition c` is `{"Condition": c}`, every other
    `!Fn x` is `{"Fn::Fn": x}`, and `!GetAtt a.b` is `{"Fn::GetAtt": [a, b]}`,
    exactly as CloudFormation reads them.
    """
    # Imported here: cfn-lint is a development and `hookline local` dependency,
    # absent from the Lambda layer, and takes most of a second to import.
    from cfnlint.decode import decode_str  # type: ignore[import-untyped]

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TemplateError(f"{path}: cannot read the template: {error}") from error
    document, matches = decode_str(text)
    if matches:
        raise TemplateError(_parse_error(path, matches))
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources mapping)")
    plain: dict[str, Any] = _plain(document)
    return plain


def _parse_error(path: Path, matches: list[Any]) -> str:
    """One line for the first problem cfn-lint found: `path:line: what`."""
    first = matches[0]
    line = int(first.linenumber)
    # cfn-lint repeats the line in some messages; the prefix already says it.
    message = re.sub(r" \(line \d+\)$", "", " ".join(str(first.message).split()))
    if message.startswith("Duplicate found") and len(matches) > 1:
        # Reported as a pair: the first occurrence, then the repeated one.
        line = int(matches[1].linenumber)
        message = message.replace("Duplicate found", "duplicate key", 1)
        message = f"{message} (first on line {first.linenumber})"
    return f"{path}:{line}: {message}"


def _plain(value: Any) -> Any:
    """cfn-lint's node subclasses (which carry source marks) as built-in types."""
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return str.__str__(value)
    return value


class _NoValue:
    """`Ref AWS::NoValue`: the property or list item is left out."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()

_LIST_PARAMETER = re.compile(r"^(CommaDelimitedList|List<.*>)$")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


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
    # moto's default account, which the local stack's ARNs carry.
    account_id: str = "123456789012"

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::Partition": "aws",
            "AWS::AccountId": self.account_id,
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

    def get_att(self, resource: str, attribute: str) -> str:
        if self.placeholder_attributes:
            return self.attributes.get((resource, attribute), f"<{resource}.{attribute}>")
        try:
            return self.attributes[(resource, attribute)]
        except KeyError:
            raise KeyError(f"cannot resolve Fn::GetAtt {resource}.{attribute}") from None

    def condition(self, name: str) -> bool:
        """The value of a condition declared in the template's Conditions section."""
        declared = self.template.get("Conditions", {})
        if name not in declared:
            raise KeyError(f"template.yaml has no condition {name}")
        return self._truth(self.resolve(declared[name]), f"condition {name}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, argument),) = value.items()
            function = self._FUNCTIONS.get(name)
            # `Condition` is an intrinsic only with a condition's name: a policy
            # statement's `Condition: {StringEquals: ...}` is a plain key.
            if function is not None and (name != "Condition" or isinstance(argument, str)):
                return function(self, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    # Each takes the intrinsic's argument as loaded, before resolution.

    def _ref(self, name: Any) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        text = self.ref(name)
        declared = self.template.get("Parameters", {}).get(name, {})
        # A list parameter's Ref is a list (`!Join ["", !Ref SubnetIds]`).
        if _LIST_PARAMETER.match(str(declared.get("Type", ""))):
            return text.split(",")
        return text

    def _get_att(self, argument: Any) -> str:
        # The long form also takes "Resource.Attribute"; attributes may hold dots.
        parts = argument.split(".", 1) if isinstance(argument, str) else argument
        resource, attribute = (self.resolve(part) for part in parts)
        return self.get_att(resource, attribute)

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument
            variables = self.resolve(variables)
        else:
            text, variables = argument, {}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # `${!Literal}` writes `${Literal}`
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return self.get_att(*name.split(".", 1))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(substitute, text)

    def _join(self, argument: Any) -> str:
        delimiter, items = argument
        return str(delimiter).join(str(item) for item in self.resolve(items))

    def _select(self, argument: Any) -> Any:
        index, items = argument
        return self.resolve(items)[int(self.resolve(index))]

    def _split(self, argument: Any) -> list[str]:
        delimiter, text = argument
        return str(self.resolve(text)).split(delimiter)

    def _find_in_map(self, argument: Any) -> Any:
        name, top, second = (self.resolve(part) for part in argument)
        return self.resolve(self.template.get("Mappings", {})[name][top][second])

    def _if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    def _equals(self, argument: Any) -> bool:
        left, right = (self.resolve(part) for part in argument)
        return bool(left == right)

    def _not(self, argument: Any) -> bool:
        (operand,) = argument
        return not self._truth(self.resolve(operand), "Fn::Not")

    def _and(self, argument: Any) -> bool:
        return all(self._truth(self.resolve(item), "Fn::And") for item in argument)

    def _or(self, argument: Any) -> bool:
        return any(self._truth(self.resolve(item), "Fn::Or") for item in argument)

    def _condition(self, name: Any) -> bool:
        return self.condition(name)

    @staticmethod
    def _truth(value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise TemplateError(f"{where} is {value!r}, not a condition")
        return value

    _FUNCTIONS: ClassVar[Mapping[str, Callable[[Resolver, Any], Any]]] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::Join": _join,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::FindInMap": _find_in_map,
        "Fn::If": _if,
        "Fn::Equals": _equals,
        "Fn::Not": _not,
        "Fn::And": _and,
        "Fn::Or": _or,
        "Condition": _condition,
    }


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
    resolved = {name: resolver.resolve(value) for name, value in merged.items()}
    # `!If [c, x, !Ref AWS::NoValue]` leaves the variable out, as CloudFormation does.
    return {name: str(value) for name, value in resolved.items() if value is not NO_VALUE}


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
