"""`make deploy`: `sam build`, then `sam deploy`, guided the first time a stack is deployed.

    python -m hookline.deploy [--config-env prod] [--guided]

The settings are samconfig.toml's (`--config-env` picks the environment). The
build is made for the environment's `Architecture` parameter, which it must name. A stack that does
not exist yet is deployed with `--guided`, which asks for each parameter and
offers samconfig's values; a value still marked REPLACE_ME is refused before
anything is built.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hookline.errors import ConfigurationError
from hookline.sam import PROJECT_ROOT, ToolMissing, sam_environment, sam_executable

PLACEHOLDER = "REPLACE_ME"
ARCHITECTURES = ("arm64", "x86_64")

Run = Callable[[list[str]], int]


class DeployError(ConfigurationError):
    """A deploy that cannot start as configured (named, with what to fix)."""


@dataclass(frozen=True)
class DeploySettings:
    config_env: str
    stack_name: str
    region: str | None
    profile: str | None
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        return self.parameters.get("Architecture")

    def placeholders(self) -> list[str]:
        return sorted(name for name, value in self.parameters.items() if PLACEHOLDER in value)

    def check(self) -> None:
        """DeployError if these settings cannot be deployed as they are.

        Architecture must be named: the build is made for it, and left out,
        `sam deploy` would keep the stack's previous value (or take a guided
        answer) while the build had guessed. arm64 wheels on x86_64 functions
        fail at import, the receiver's included.
        """
        left = self.placeholders()
        if left:
            raise DeployError(
                f"samconfig.toml's [{self.config_env}] still has {PLACEHOLDER} in "
                f"{', '.join(left)}: put your values there first (docs/deploy.md)"
            )
        if self.architecture not in ARCHITECTURES:
            raise DeployError(
                f"samconfig.toml's [{self.config_env}] parameter_overrides must name "
                f"Architecture ({' or '.join(ARCHITECTURES)}): the build is made for it"
            )


def parameter_overrides(value: str | list[str] | None) -> dict[str, str]:
    """Template parameters as samconfig's parameter_overrides gives them (a string
    `A=1 B="x y"` or a list of `A=1`), or `hookline local --parameter-overrides`."""
    if value is None:
        return {}
    items = shlex.split(value) if isinstance(value, str) else list(value)
    parameters = {}
    for item in items:
        name, separator, setting = item.partition("=")
        if not separator or not name:
            raise DeployError(f"parameter override {item!r} is not Name=Value")
        parameters[name] = setting
    return parameters


def _section(config: dict[str, Any], config_env: str, command: str) -> dict[str, Any]:
    section: dict[str, Any] = config.get(config_env, {}).get(command, {}).get("parameters", {})
    return section


def read_settings(config_env: str, path: Path | None = None) -> DeploySettings:
    path = path or PROJECT_ROOT / "samconfig.toml"
    with path.open("rb") as handle:
        config = tomllib.load(handle)
    if config_env not in config:
        known = ", ".join(name for name in config if isinstance(config[name], dict))
        raise DeployError(f"samconfig.toml has no [{config_env}] environment (it has {known})")
    # SAM's precedence: a command's own section over the environment's global one.
    merged = {
        **_section(config, config_env, "global"),
        **_section(config, config_env, "deploy"),
    }
    stack_name = merged.get("stack_name")
    if not stack_name:
        raise DeployError(f"samconfig.toml's [{config_env}] names no stack_name")
    return DeploySettings(
        config_env=config_env,
        stack_name=str(stack_name),
        region=merged.get("region"),
        profile=merged.get("profile"),
        parameters=parameter_overrides(merged.get("parameter_overrides")),
    )


def stack_exists(settings: DeploySettings, cloudformation: Any = None) -> bool:
    """Whether CloudFormation holds a deployed stack of that name (a stack only
    under review, from an abandoned first deploy, counts as new)."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if cloudformation is None:
        from hookline.remote import aws_session

        session = aws_session(settings.profile, settings.region)
        try:
            cloudformation = session.client("cloudformation")
        except NoRegionError:
            raise DeployError(
                "no AWS region: set AWS_REGION, or `region` in samconfig.toml's "
                f"[{settings.config_env}.global.parameters]"
            ) from None
    try:
        stacks = cloudformation.describe_stacks(StackName=settings.stack_name)["Stacks"]
    except NoCredentialsError:
        raise DeployError(
            "no AWS credentials: run `aws configure` or `aws sso login`, or set AWS_PROFILE"
        ) from None
    except ClientError as error:
        if "does not exist" in str(error):
            return False
        raise DeployError(f"cannot read stack {settings.stack_name}: {error}") from None
    return bool(stacks) and stacks[0]["StackStatus"] != "REVIEW_IN_PROGRESS"


def commands(settings: DeploySettings, *, guided: bool) -> list[list[str]]:
    """The SAM CLI runs a deploy makes, in order (for settings that pass `check`)."""
    settings.check()
    env = ["--config-env", settings.config_env]
    build = ["build", "--template-file", "template.yaml", *env]
    build += ["--parameter-overrides", f"Architecture={settings.architecture}"]
    deploy = ["deploy", *env]
    if guided:
        deploy.append("--guided")
    return [build, deploy]


def _run_sam(arguments: list[str]) -> int:
    # Not captured: `sam deploy` asks questions and shows the change set.
    return subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sam_executable(), *arguments], cwd=PROJECT_ROOT, env=sam_environment(), check=False
    ).returncode


def deploy(
    settings: DeploySettings,
    *,
    guided: bool | None = None,
    run: Run = _run_sam,
    exists: Callable[[DeploySettings], bool] = stack_exists,
) -> int:
    settings.check()
    if guided is None:
        guided = not exists(settings)
        if guided:
            print(
                f"Stack {settings.stack_name} does not exist yet: deploying with --guided. "
                f"Keep Architecture at {settings.architecture} when asked: the build is "
                "made for it (change it in samconfig.toml instead)."
            )
    for arguments in commands(settings, guided=guided):
        code = run(arguments)
        if code != 0:
            return code
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hookline.deploy", description=__doc__)
    parser.add_argument("--config-env", default="default", help="samconfig.toml's environment")
    parser.add_argument(
        "--guided",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask for every parameter (default: only when the stack does not exist yet)",
    )
    args = parser.parse_args(argv)
    try:
        return deploy(read_settings(args.config_env), guided=args.guided)
    except (DeployError, ToolMissing) as error:
        print(f"make deploy: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
