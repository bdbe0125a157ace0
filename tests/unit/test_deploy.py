"""`make deploy`: samconfig.toml's environments, and what a deploy runs (hookline.deploy)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from hookline import template
from hookline.deploy import (
    DeployError,
    DeploySettings,
    commands,
    deploy,
    read_settings,
    stack_exists,
)
from samcli.cli.types import CfnParameterOverridesType  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]

# What a production stack cannot do without: where its database is and how to reach it,
# who is paged, which schema, how many connections, which architecture it is built for.
PRODUCTION_PARAMETERS = {
    "Stage",
    "LogLevel",
    "AlarmEmail",
    "DatabaseSecretName",
    "DatabaseSchema",
    "DatabaseSubnetIds",
    "DatabaseSecurityGroupIds",
    "ConsumerMaxConcurrency",
    "Architecture",
}


def test_the_prod_environment_names_every_parameter_a_production_deploy_needs() -> None:
    settings = read_settings("prod")
    declared = template.load()["Parameters"]
    assert settings.stack_name == "hookline-prod"
    assert set(settings.parameters) >= PRODUCTION_PARAMETERS
    assert set(settings.parameters) <= set(declared), "samconfig names an unknown parameter"
    # The development-only URL (a password in a stack parameter) is never production's.
    assert "DatabaseUrl" not in settings.parameters
    assert settings.placeholders() == [
        "AlarmEmail",
        "DatabaseSecurityGroupIds",
        "DatabaseSubnetIds",
    ]


@pytest.mark.parametrize("config_env", ["default", "prod"])
def test_parameter_overrides_are_read_as_the_sam_cli_reads_them(config_env: str) -> None:
    import tomllib

    raw = tomllib.loads((ROOT / "samconfig.toml").read_text())[config_env]["deploy"]["parameters"]
    sam_reading = CfnParameterOverridesType().convert(raw["parameter_overrides"], None, None)
    assert read_settings(config_env).parameters == sam_reading


def test_an_unknown_environment_is_named() -> None:
    with pytest.raises(DeployError, match=r"no \[staging\] environment"):
        read_settings("staging")


class Recorder:
    def __init__(self, codes: dict[str, int] | None = None) -> None:
        self.runs: list[list[str]] = []
        self.codes = codes or {}

    def __call__(self, arguments: list[str]) -> int:
        self.runs.append(arguments)
        return self.codes.get(arguments[0], 0)


def filled_prod() -> DeploySettings:
    settings = read_settings("prod")
    return replace(
        settings,
        parameters={
            **settings.parameters,
            "AlarmEmail": "oncall@shop.example",
            "DatabaseSubnetIds": "subnet-0a1,subnet-0b2",
            "DatabaseSecurityGroupIds": "sg-0c3",
        },
    )


def test_placeholders_are_refused_before_anything_runs() -> None:
    recorder = Recorder()
    with pytest.raises(
        DeployError, match="AlarmEmail, DatabaseSecurityGroupIds, DatabaseSubnetIds"
    ):
        deploy(read_settings("prod"), run=recorder, exists=lambda _: True)
    assert recorder.runs == []


@pytest.fixture
def cloudformation(aws: None) -> Any:
    return boto3.client("cloudformation", region_name="us-east-1")


def test_a_first_deploy_is_guided_and_a_later_one_is_not(cloudformation: Any) -> None:
    settings = filled_prod()
    assert stack_exists(settings, cloudformation) is False
    recorder = Recorder()
    assert deploy(settings, run=recorder, exists=lambda s: stack_exists(s, cloudformation)) == 0
    assert recorder.runs == [
        ["build", "--template-file", "template.yaml", "--config-env", "prod",
         "--parameter-overrides", "Architecture=arm64"],
        ["deploy", "--config-env", "prod", "--guided"],
    ]  # fmt: skip

    body = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    cloudformation.create_stack(StackName="hookline-prod", TemplateBody=json.dumps(body))
    assert stack_exists(settings, cloudformation) is True
    recorder = Recorder()
    assert deploy(settings, run=recorder, exists=lambda s: stack_exists(s, cloudformation)) == 0
    assert recorder.runs[1] == ["deploy", "--config-env", "prod"]


def test_a_failed_build_deploys_nothing() -> None:
    recorder = Recorder({"build": 1})
    assert deploy(filled_prod(), run=recorder, exists=lambda _: True) == 1
    assert [run[0] for run in recorder.runs] == ["build"]


def test_the_build_is_made_for_the_architecture_the_stack_runs_on() -> None:
    settings = replace(read_settings("default"), parameters={"Architecture": "x86_64"})
    build, _ = commands(settings, guided=False)
    assert build[-2:] == ["--parameter-overrides", "Architecture=x86_64"]


def test_no_credentials_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = replace(read_settings("default"), region="us-east-1")
    with pytest.raises(DeployError, match="no AWS credentials"):
        stack_exists(settings)


def test_an_environment_that_does_not_name_its_architecture_is_refused() -> None:
    """The build would guess while the deploy keeps the stack's previous value."""
    recorder = Recorder()
    settings = replace(read_settings("default"), parameters={"Stage": "dev"})
    with pytest.raises(DeployError, match="must name Architecture"):
        deploy(settings, run=recorder, exists=lambda _: True)
    assert recorder.runs == []


def test_no_region_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(DeployError, match="no AWS region"):
        stack_exists(read_settings("default"))


def test_the_region_the_aws_cli_reads_is_the_one_used(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_REGION alone (botocore reads AWS_DEFAULT_REGION): the stack is looked up there."""
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    body = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    boto3.client("cloudformation", region_name="eu-west-1").create_stack(
        StackName="hookline-dev", TemplateBody=json.dumps(body)
    )
    assert stack_exists(read_settings("default")) is True


def test_one_parser_for_samconfig_and_the_local_stack_s_overrides() -> None:
    """`hookline local --parameter-overrides` and samconfig read Name=Value alike."""
    from hookline.deploy import parameter_overrides
    from hookline.errors import ConfigurationError

    assert parameter_overrides(["DatabaseSchema=shop_a", "SquareNotificationUrl="]) == {
        "DatabaseSchema": "shop_a",
        "SquareNotificationUrl": "",
    }
    assert parameter_overrides('Stage=dev LogLevel="DEBUG"') == {
        "Stage": "dev",
        "LogLevel": "DEBUG",
    }
    with pytest.raises(ConfigurationError, match="is not Name=Value"):
        parameter_overrides(["DatabaseSchema"])
