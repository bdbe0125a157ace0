"""Running the SAM CLI the way this project needs it.

`sam build` for the python3.13 runtime needs a python3.13 interpreter on PATH.
Development runs on 3.11+, so this finds 3.13 on PATH or in pyenv and puts its
directory first for the SAM process only.

    python -m hookline.sam validate
    python -m hookline.sam build [--build-dir DIR] [--architecture x86_64]
    python -m hookline.sam translate [-o FILE]

`translate` is what CloudFormation deploys: template.yaml after the SAM
transform (roles, event source mappings, permissions SAM adds), offline, for
the template security test and checkov (`make security`).

The HooklineLayer holds the migrations MigrationsFunction applies on every
deploy: shared/hookline/migrations is a symbolic link to db/migrations, which
`sam build` copies as files (and its build cache hashes through), however the
build is started.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LAMBDA_PYTHON = "3.13"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Stands in for the S3 location `sam package` would give local code: the
# transform accepts only S3 URIs, and the code does not change what it makes.
_CODE_BUCKET = "s3://hookline-translate/"


class ToolMissing(RuntimeError):
    """A tool the build needs is not installed."""


def _works(python: str) -> bool:
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [python, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except OSError:
        return False
    return result.returncode == 0 and result.stdout.strip() == str(
        tuple(int(part) for part in LAMBDA_PYTHON.split("."))
    )


def find_lambda_python() -> Path:
    """The directory holding a working python3.13, from PATH or pyenv."""
    name = f"python{LAMBDA_PYTHON}"
    on_path = shutil.which(name)
    # A pyenv shim is on PATH even when 3.13 is not the selected version: try it.
    if on_path and _works(on_path):
        return Path(on_path).parent
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for candidate in sorted(Path(pyenv_root, "versions").glob(f"{LAMBDA_PYTHON}*"), reverse=True):
        interpreter = candidate / "bin" / name
        if interpreter.exists() and _works(str(interpreter)):
            return interpreter.parent
    raise ToolMissing(
        f"{name} is needed by `sam build` for the python{LAMBDA_PYTHON} runtime: "
        f"install it (e.g. `pyenv install {LAMBDA_PYTHON}`) or put it on PATH"
    )


def host_architecture() -> str:
    """This machine's Lambda architecture name."""
    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


def sam_executable() -> str:
    beside_python = Path(sys.executable).parent / "sam"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("sam")
    if found is None:
        raise ToolMissing("the SAM CLI is not installed: run `make install`")
    return found


def sam_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{find_lambda_python()}{os.pathsep}{env.get('PATH', '')}"
    env["SAM_CLI_TELEMETRY"] = "0"
    # Validation and builds need a region but never an account.
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
    return env


def run_sam(
    arguments: Sequence[str], *, cwd: Path = PROJECT_ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sam_executable(), *arguments],
        cwd=cwd,
        env=sam_environment(),
        capture_output=True,
        text=True,
        check=False,
    )


def validate() -> subprocess.CompletedProcess[str]:
    return run_sam(["validate", "--lint", "--template-file", "template.yaml"])


def build(
    build_dir: Path | None = None, architecture: str | None = None
) -> subprocess.CompletedProcess[str]:
    arguments = ["build", "--template-file", "template.yaml"]
    if build_dir is not None:
        # Outside samconfig's cache: a test build must not reuse stale artifacts.
        arguments += ["--build-dir", str(build_dir), "--no-cached"]
    if architecture is not None:
        arguments += ["--parameter-overrides", f"Architecture={architecture}"]
    return run_sam(arguments)


def translate(template_path: Path | None = None, region: str = "us-east-1") -> dict[str, Any]:
    """template.yaml as CloudFormation after the SAM transform, without AWS credentials.

    Managed policies named in `Policies` would need IAM to resolve: the template
    names none (each function has its own explicit role).
    """
    # Imported here: the SAM translator is a development tool, not a runtime dependency.
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    from hookline import template

    document = template.load(template_path or PROJECT_ROOT / "template.yaml")
    for resource in document.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = _CODE_BUCKET + properties[key]
    translator = Translator(
        managed_policy_map=None,
        sam_parser=Parser(),
        boto_session=boto3.Session(region_name=region),
    )
    translated: dict[str, Any] = translator.translate(
        sam_template=document, parameter_values={}, get_managed_policy_map=dict
    )
    return translated


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hookline.sam")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("validate", help="sam validate --lint")
    build_parser = commands.add_parser("build", help="sam build with python3.13 on PATH")
    build_parser.add_argument("--build-dir", type=Path)
    build_parser.add_argument(
        "--architecture", choices=["arm64", "x86_64", "host"], help="host: this machine's"
    )
    translate_parser = commands.add_parser(
        "translate", help="the CloudFormation template SAM makes of template.yaml, as JSON"
    )
    translate_parser.add_argument("-o", "--output", type=Path, help="default: stdout")
    args = parser.parse_args(argv)
    if args.command == "translate":
        text = json.dumps(translate(), indent=2) + "\n"
        if args.output is None:
            sys.stdout.write(text)
        else:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(text)
        return 0
    if getattr(args, "architecture", None) == "host":
        args.architecture = host_architecture()
    try:
        result = (
            validate() if args.command == "validate" else build(args.build_dir, args.architecture)
        )
    except ToolMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
