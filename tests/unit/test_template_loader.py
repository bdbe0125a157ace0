"""hookline.template reads template.yaml as CloudFormation does and resolves its intrinsics.

One valid template; each test changes one thing in it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hookline import template
from hookline.errors import EXIT_CONFIGURATION, ConfigurationError

VALID = """\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Stage:
    Type: String
    Default: dev
  SubnetIds:
    Type: CommaDelimitedList
    Default: "a,b,c"
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-events.fifo"
Outputs:
  Probe:
    Value: PROBE
"""

ATTRIBUTES = {
    ("Queue", "Arn"): "arn:aws:sqs:us-east-1:123456789012:q",
    ("Db", "Endpoint.Address"): "db",
}

Write = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Writes VALID with each (old, new) replacement made; each old text must occur once."""

    def written(*changes: tuple[str, str]) -> Path:
        text = VALID
        for old, new in changes:
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        path = tmp_path / "template.yaml"
        path.write_text(text)
        return path

    return written


def probe(write: Write, expression: str) -> Any:
    return template.load(write(("PROBE", expression)))["Outputs"]["Probe"]["Value"]


# name: (short form, long form, as loaded, as resolved with the defaults)
FORMS: dict[str, tuple[str, str, Any, Any]] = {
    "Ref": ("!Ref Stage", "{Ref: Stage}", {"Ref": "Stage"}, "dev"),
    "GetAtt dotted": (
        "!GetAtt Queue.Arn",
        '{"Fn::GetAtt": [Queue, Arn]}',
        {"Fn::GetAtt": ["Queue", "Arn"]},
        ATTRIBUTES[("Queue", "Arn")],
    ),
    "GetAtt list": (
        "!GetAtt [Queue, Arn]",
        '{"Fn::GetAtt": [Queue, Arn]}',
        {"Fn::GetAtt": ["Queue", "Arn"]},
        ATTRIBUTES[("Queue", "Arn")],
    ),
    # Only the first dot separates the resource: the attribute may hold dots.
    "GetAtt dotted attribute": (
        "!GetAtt Db.Endpoint.Address",
        '{"Fn::GetAtt": [Db, Endpoint.Address]}',
        {"Fn::GetAtt": ["Db", "Endpoint.Address"]},
        "db",
    ),
    "Sub string": (
        '!Sub "${AWS::StackName}/${Stage}/${Queue.Arn}/${!Literal}"',
        '{"Fn::Sub": "${AWS::StackName}/${Stage}/${Queue.Arn}/${!Literal}"}',
        {"Fn::Sub": "${AWS::StackName}/${Stage}/${Queue.Arn}/${!Literal}"},
        f"hookline-local/dev/{ATTRIBUTES[('Queue', 'Arn')]}/${{Literal}}",
    ),
    "Sub list": (
        '!Sub ["${Region}-${Stage}-${Arn}", {Region: !Ref "AWS::Region", Arn: !GetAtt Queue.Arn}]',
        '{"Fn::Sub": ["${Region}-${Stage}-${Arn}", '
        '{Region: {Ref: "AWS::Region"}, Arn: {"Fn::GetAtt": [Queue, Arn]}}]}',
        {
            "Fn::Sub": [
                "${Region}-${Stage}-${Arn}",
                {"Region": {"Ref": "AWS::Region"}, "Arn": {"Fn::GetAtt": ["Queue", "Arn"]}},
            ]
        },
        f"us-east-1-dev-{ATTRIBUTES[('Queue', 'Arn')]}",
    ),
    "Condition": ("!Condition IsProd", "{Condition: IsProd}", {"Condition": "IsProd"}, False),
    "If": (
        "!If [IsProd, big, small]",
        '{"Fn::If": [IsProd, big, small]}',
        {"Fn::If": ["IsProd", "big", "small"]},
        "small",
    ),
    "Equals": (
        "!Equals [!Ref Stage, dev]",
        '{"Fn::Equals": [{Ref: Stage}, dev]}',
        {"Fn::Equals": [{"Ref": "Stage"}, "dev"]},
        True,
    ),
    "Not": (
        "!Not [!Condition IsProd]",
        '{"Fn::Not": [{Condition: IsProd}]}',
        {"Fn::Not": [{"Condition": "IsProd"}]},
        True,
    ),
    "Select": (
        "!Select [1, !Ref SubnetIds]",
        '{"Fn::Select": [1, {Ref: SubnetIds}]}',
        {"Fn::Select": [1, {"Ref": "SubnetIds"}]},
        "b",
    ),
    "Join": (
        '!Join ["-", !Ref SubnetIds]',
        '{"Fn::Join": ["-", {Ref: SubnetIds}]}',
        {"Fn::Join": ["-", {"Ref": "SubnetIds"}]},
        "a-b-c",
    ),
}


@pytest.mark.parametrize("name", FORMS)
def test_short_and_long_forms_load_alike(write: Write, name: str) -> None:
    short, long, loaded, _ = FORMS[name]
    assert probe(write, short) == loaded
    assert probe(write, long) == loaded


@pytest.mark.parametrize("name", FORMS)
def test_each_intrinsic_resolves(write: Write, name: str) -> None:
    short, _, _, resolved = FORMS[name]
    document = template.load(write(("PROBE", short)))
    resolver = template.Resolver(document, attributes=ATTRIBUTES)
    assert resolver.resolve(document["Outputs"]["Probe"]["Value"]) == resolved


def test_the_valid_template_loads_as_plain_python(write: Write) -> None:
    document = template.load(write())
    assert_plain(document)
    assert json.loads(json.dumps(document)) == document
    assert document["Resources"]["Queue"]["Properties"]["QueueName"] == {
        "Fn::Sub": "${AWS::StackName}-events.fifo"
    }


def test_a_parameter_override_decides_conditions(write: Write) -> None:
    document = template.load(write(("PROBE", "!If [IsProd, big, small]")))
    resolver = template.Resolver(document, parameters={"Stage": "prod"})
    assert resolver.condition("IsProd") is True
    assert resolver.resolve(document["Outputs"]["Probe"]["Value"]) == "big"


def test_no_value_leaves_the_property_out(write: Write) -> None:
    document = template.load(
        write(("PROBE", '{Kept: 1, Dropped: !If [IsProd, 2, !Ref "AWS::NoValue"]}'))
    )
    resolved = template.Resolver(document).resolve(document["Outputs"]["Probe"]["Value"])
    assert resolved == {"Kept": 1}


def test_a_long_form_get_att_may_name_the_attribute_after_a_dot(write: Write) -> None:
    document = template.load(write(("PROBE", '{"Fn::GetAtt": Db.Endpoint.Address}')))
    resolver = template.Resolver(document, attributes=ATTRIBUTES)
    assert resolver.resolve(document["Outputs"]["Probe"]["Value"]) == "db"


def test_an_unknown_condition_is_named(write: Write) -> None:
    document = template.load(write(("PROBE", "!If [IsStaging, big, small]")))
    with pytest.raises(KeyError, match="IsStaging"):
        template.Resolver(document).resolve(document["Outputs"]["Probe"]["Value"])


def test_an_unknown_sub_variable_is_named(write: Write) -> None:
    document = template.load(write(("PROBE", '!Sub "${Nowhere}"')))
    with pytest.raises(KeyError, match="Nowhere"):
        template.Resolver(document).resolve(document["Outputs"]["Probe"]["Value"])


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        # YAML notices an unclosed list where the next line starts.
        (("Default: dev", "Default: [dev"), 6, "expected ',' or ']'"),
        (
            ("Default: dev", "Default: dev\n    Type: Number"),
            6,
            "duplicate key 'Type' (first on line 4)",
        ),
        (("    Type: AWS::SQS::Queue", "\tType: AWS::SQS::Queue"), 13, "cannot start any token"),
    ],
    ids=["unclosed list", "duplicate key", "tab"],
)
def test_a_malformed_template_is_one_line_naming_file_and_line(
    write: Write, change: tuple[str, str], line: int, words: str
) -> None:
    path = write(change)
    with pytest.raises(template.TemplateError) as raised:
        template.load(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:{line}: ")
    assert words in message
    assert "\n" not in message


def test_a_document_without_resources_is_refused(write: Write) -> None:
    path = write(("Resources:", "Resource:"))
    with pytest.raises(template.TemplateError, match="no Resources mapping"):
        template.load(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(template.TemplateError, match=f"^{path}: cannot read the template"):
        template.load(path)


def test_a_template_error_is_a_configuration_error_for_the_cli() -> None:
    assert issubclass(template.TemplateError, ConfigurationError)
    assert issubclass(template.TemplateError, ValueError)  # what load raised before
    assert template.TemplateError.exit_code == EXIT_CONFIGURATION


def test_the_real_template_loads_as_plain_python() -> None:
    document = template.load()
    assert_plain(document)
    assert json.loads(json.dumps(document)) == document


def test_every_condition_and_function_environment_of_the_real_template_resolves() -> None:
    document = template.load()
    resources = document["Resources"]
    resolver = template.Resolver(
        document, refs={name: f"<{name}>" for name in resources}, placeholder_attributes=True
    )
    for name in document.get("Conditions", {}):
        assert isinstance(resolver.condition(name), bool), name
    functions = [n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    assert functions
    for name in functions:
        for variable, value in template.function_environment(document, name, resolver).items():
            assert "Fn::" not in value, (name, variable, value)
            assert "'Ref'" not in value, (name, variable, value)


def test_every_output_of_the_real_template_resolves() -> None:
    # Outputs hold every intrinsic form the template uses at the top level.
    document = template.load()
    resolver = template.Resolver(
        document,
        refs={name: f"<{name}>" for name in document["Resources"]},
        placeholder_attributes=True,
    )
    for name, output in document.get("Outputs", {}).items():
        assert isinstance(resolver.resolve(output["Value"]), str), name


def test_importing_the_module_does_not_import_cfn_lint() -> None:
    # Functions never read the template, and the Lambda layer has no cfn-lint.
    code = "import sys, hookline.template; assert 'cfnlint' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def assert_plain(value: Any) -> None:
    """Only built-in types, never cfn-lint's node subclasses."""
    assert type(value) in (dict, list, str, int, float, bool, type(None)), type(value)
    if isinstance(value, dict):
        for key, item in value.items():
            assert_plain(key)
            assert_plain(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain(item)


def write_and_load(directory: Path, text: str) -> dict[str, Any]:
    path = directory / "template.yaml"
    path.write_text(text)
    return template.load(path)


def test_a_policy_condition_mapping_is_not_the_condition_intrinsic(tmp_path: Path) -> None:
    document = write_and_load(
        tmp_path,
        """
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      Statement:
        - Condition: {StringEquals: {"aws:SourceAccount": "1"}}
""",
    )
    resolved = template.Resolver(document).resolve(document["Resources"]["Role"]["Properties"])
    assert resolved == {"Statement": [{"Condition": {"StringEquals": {"aws:SourceAccount": "1"}}}]}


def test_a_variable_that_resolves_to_no_value_is_left_out_of_the_environment(
    tmp_path: Path,
) -> None:
    document = write_and_load(
        tmp_path,
        """
Conditions:
  Never: !Equals ["a", "b"]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          KEPT: "yes"
          GONE: !If [Never, "x", !Ref AWS::NoValue]
""",
    )
    resolver = template.Resolver(document)
    assert template.function_environment(document, "Fn", resolver) == {"KEPT": "yes"}
