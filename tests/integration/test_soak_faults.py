"""The soak's fault switches act as the failures they stand for, seen through the real
clients: botocore reads the injected SQS and DynamoDB errors as AWS's own (so the
receiver and the idempotency layer meet them as they would in AWS), and the
provider sandbox's outage switch makes every provider API answer 503."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import boto3
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError
from hookline.local.sandbox import FAULTS_PATH, ProviderSandbox, serve
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from tests.soak.moto_faults import CONTROL_PATH, Faults, with_faults

ONE_TRY = Config(retries={"mode": "standard", "max_attempts": 1})


@pytest.fixture
def moto_url() -> Iterator[str]:
    app = with_faults(DomainDispatcherApplication(create_backend_app), Faults())
    server = make_server("127.0.0.1", 0, app, True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _arm(url: str, **seconds: float) -> dict[str, int]:
    answer = urllib3.request("POST", url + CONTROL_PATH, json=seconds)
    assert answer.status == 200
    refused: dict[str, int] = json.loads(answer.data)["refused"]
    return refused


def test_an_sqs_fault_fails_sends_as_internal_errors_and_nothing_else(moto_url: str) -> None:
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="soak",
        aws_secret_access_key="soak",
        config=ONE_TRY,
    )
    queue = sqs.create_queue(QueueName="soak")["QueueUrl"]
    _arm(moto_url, sqs_send=60)
    with pytest.raises(ClientError) as refused:
        sqs.send_message(QueueUrl=queue, MessageBody="x")
    assert refused.value.response["Error"]["Code"] == "InternalError"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    # Receives go on: the pollers keep working through a send fault.
    assert sqs.receive_message(QueueUrl=queue).get("Messages") is None
    assert _arm(moto_url, sqs_send=0)["sqs_send"] >= 1
    sqs.send_message(QueueUrl=queue, MessageBody="x")


def test_a_dynamodb_fault_is_a_throttle(moto_url: str) -> None:
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="soak",
        aws_secret_access_key="soak",
        config=ONE_TRY,
    )
    dynamodb.create_table(
        TableName="soak",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    _arm(moto_url, dynamodb=60)
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(TableName="soak", Item={"id": {"S": "a"}})
    assert refused.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    _arm(moto_url, dynamodb=0)
    dynamodb.put_item(TableName="soak", Item={"id": {"S": "a"}})


def test_an_unknown_fault_is_refused(moto_url: str) -> None:
    answer = urllib3.request("POST", moto_url + CONTROL_PATH, json={"lambda": 5})
    assert answer.status == 400


def test_the_sandbox_outage_switch_fails_every_provider_api_until_switched_off() -> None:
    with serve(ProviderSandbox(mercadopago_token="token", stripe_api_key="key")) as sandbox:

        def events() -> int:
            return urllib3.request(
                "GET", sandbox.stripe_url + "/v1/events", headers={"Authorization": "Bearer key"}
            ).status

        assert events() == 200
        assert urllib3.request("POST", sandbox.url + FAULTS_PATH, json={"down": True}).status == 200
        assert events() == 503
        assert (
            urllib3.request("POST", sandbox.url + FAULTS_PATH, json={"down": "yes"}).status == 400
        )
        assert (
            urllib3.request("POST", sandbox.url + FAULTS_PATH, json={"down": False}).status == 200
        )
        assert events() == 200
