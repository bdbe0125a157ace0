"""A service moto serves from a process of its own reaches the functions, and the
containers `hookline event` writes env.json for, as botocore's per-service variable."""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

import boto3
from hookline.local.env_file import write_env_file
from hookline.local.runtime import container_environment
from hookline.local.wiring import FunctionSpec

ROOT = Path(__file__).resolve().parents[3]


def test_a_separate_service_endpoint_becomes_botocore_s_own_variable(tmp_path: Path) -> None:
    function = FunctionSpec(
        logical_id="ConsumerFunction",
        handler="app.handler",
        code_dir=tmp_path,
        runtime="python3.13",
        architecture="x86_64",
        timeout_seconds=3,
        memory_mb=256,
        environment={"AWS_ENDPOINT_URL": ""},
        layers=(),
    )
    environment = container_environment(
        function,
        "http://127.0.0.1:5999",
        "us-east-1",
        service_endpoints={"dynamodb": "http://127.0.0.1:6001"},
    )

    assert environment["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5999"
    assert environment["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:6001"
    # What the functions' boto3 clients then use: DynamoDB there, the rest at the other.
    session = boto3.session.Session(region_name="us-east-1")
    with mock.patch.dict(os.environ, environment, clear=True):
        assert session.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:6001"
        assert session.client("sqs").meta.endpoint_url == "http://127.0.0.1:5999"


def test_env_json_names_a_separate_service_endpoint_as_a_container_reaches_it(
    tmp_path: Path,
) -> None:
    state = {
        "endpoint_url": "http://127.0.0.1:4566",
        "service_endpoints": {"dynamodb": "http://127.0.0.1:4567"},
        "functions": {"ConsumerFunction": {"environment": {}}},
    }
    written = json.loads(write_env_file(tmp_path / "env.json", state, ROOT).read_text())

    assert written["ConsumerFunction"]["AWS_ENDPOINT_URL"] == "http://host.docker.internal:4566"
    assert (
        written["ConsumerFunction"]["AWS_ENDPOINT_URL_DYNAMODB"]
        == "http://host.docker.internal:4567"
    )
