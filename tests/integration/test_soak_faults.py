"""The soak's fault switches act as the failures they stand for, and the soak fails
when one took no effect.

- botocore reads the injected SQS and DynamoDB errors as AWS's own (so the
  receiver and the idempotency layer meet them as they would in AWS), and the
  provider sandbox's outage switch makes every provider API answer 503;
- a fault that met nothing (no call to refuse, no provider API asked, none of
  hookline's connections to cut) fails the run, as does one never injected;
- the soak's moto is the stack's patched moto;
- the report's percentiles are by nearest rank.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import psycopg
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError
from hookline.local.sandbox import FAULTS_PATH, ProviderSandbox, serve
from hookline.local.stack import aws_clients
from psycopg.conninfo import conninfo_to_dict

from tests.soak import faults
from tests.soak.moto_faults import CONTROL_PATH
from tests.soak.report import percentile
from tests.soak.run import ROOT, moto_with_faults
from tests.support.postgres import PostgresServer, fresh_database

ONE_TRY = Config(retries={"mode": "standard", "max_attempts": 1})


@pytest.fixture
def moto_url() -> Iterator[str]:
    # As the soak starts it: a process of its own (patch_moto patches moto for good).
    with moto_with_faults() as url:
        yield url


def _client(service: str, url: str) -> Any:
    return aws_clients(url, "us-east-1", (service,), config=ONE_TRY)[service]


def _arm(url: str, **seconds: float) -> dict[str, int]:
    answer = urllib3.request("POST", url + CONTROL_PATH, json=seconds)
    assert answer.status == 200
    refused: dict[str, int] = json.loads(answer.data)["refused"]
    return refused


def test_an_sqs_fault_fails_sends_as_internal_errors_and_nothing_else(moto_url: str) -> None:
    sqs = _client("sqs", moto_url)
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
    dynamodb = _client("dynamodb", moto_url)
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


@pytest.fixture
def short(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("sqs", "dynamodb", "provider_api"):
        monkeypatch.setitem(faults.DURATION, name, 1.0)


def _injector(moto_url: str, sandbox_url: str = "") -> faults.Injector:
    return faults.Injector(
        admin_url="",
        database="",
        moto_urls={"sqs_send": moto_url, "dynamodb": moto_url},
        sandbox_url=sandbox_url,
        stack_pid=0,
        started=time.monotonic(),
    )


@pytest.mark.usefixtures("short")
def test_a_fault_that_refused_no_call_fails_the_run(moto_url: str) -> None:
    injector = _injector(moto_url)

    injector.inject("sqs")

    assert injector.injected[0].effect == 0
    assert faults.ineffective(["sqs"], injector.injected) == [
        f"fault sqs took no effect: {injector.injected[0].detail}"
    ]


@pytest.mark.usefixtures("short")
def test_a_fault_that_refused_calls_counts_them(moto_url: str) -> None:
    sqs = _client("sqs", moto_url)
    # moto's state is the process's: a queue of this test's own, removed after it.
    queue = sqs.create_queue(QueueName="review2-refused")["QueueUrl"]
    refused = threading.Event()

    def send_until_refused() -> None:
        while not refused.is_set():
            try:
                sqs.send_message(QueueUrl=queue, MessageBody="event")
            except ClientError:
                refused.set()

    injector = _injector(moto_url)
    sender = threading.Thread(target=send_until_refused)
    sender.start()
    try:
        injector.inject("sqs")
    finally:
        refused.set()
        sender.join(10)
        sqs.delete_queue(QueueUrl=queue)

    assert injector.injected[0].effect >= 1
    assert faults.ineffective(["sqs"], injector.injected) == []


@pytest.mark.usefixtures("short")
def test_a_provider_outage_counts_the_calls_it_refused(moto_url: str) -> None:
    with serve(ProviderSandbox(None, stripe_api_key="key")) as sandbox:
        injector = _injector(moto_url, sandbox.url)
        refused = threading.Event()

        def ask_until_refused() -> None:
            while not refused.is_set():
                answer = urllib3.request("GET", sandbox.stripe_url + "/v1/events")
                if answer.status == 503:
                    refused.set()

        ask = threading.Thread(target=ask_until_refused)
        ask.start()
        try:
            injector.inject("provider_api")
        finally:
            refused.set()
            ask.join(10)
        idle = _injector(moto_url, sandbox.url)
        idle.inject("provider_api")  # nobody asks

    assert injector.injected[0].effect >= 1
    assert idle.injected[0].effect == 0
    assert faults.ineffective(["provider_api"], idle.injected)


def test_a_fault_never_injected_fails_the_run() -> None:
    done = faults.Injected("postgres", 1.0, 7.0, "cut 3", 3)

    assert faults.ineffective(["postgres", "consumer"], [done]) == [
        "fault consumer was not injected (see the soak's stderr)"
    ]


def test_the_soak_s_moto_is_the_stack_s_patched_moto() -> None:
    script = (
        "from tests.soak.moto_faults import build_server\n"
        "from moto.sqs.models import SQSBackend\n"
        "build_server(0).server_close()\n"
        "print(getattr(SQSBackend, '_hookline_patched', False))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "True"


def test_percentiles_are_nearest_rank() -> None:
    hundred = [float(n) for n in range(1, 101)]

    assert percentile(hundred, 0.99) == 99.0
    assert percentile(hundred, 0.5) == 50.0
    assert percentile(hundred, 0.07) == 7.0
    assert percentile(hundred, 1.0) == 100.0
    assert percentile([2.0, 1.0], 0.5) == 1.0
    assert percentile([], 0.5) == 0.0


def test_a_database_cut_counts_only_the_functions_connections(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(faults.DURATION, "postgres", 0.1)
    with fresh_database(postgres, None) as url:
        name = str(conninfo_to_dict(url)["dbname"])
        injector = faults.Injector(
            admin_url=postgres.url("postgres"),
            database=name,
            moto_urls={},
            sandbox_url="",
            stack_pid=0,
            started=time.monotonic(),
        )
        # Only the soak's own connection: the cut met none of hookline's.
        with closing(psycopg.connect(url)):
            injector.inject("postgres")
        with closing(psycopg.connect(url, application_name="hookline-consumer")):
            injector.inject("postgres")

    assert [fault.effect for fault in injector.injected] == [0, 1]
    assert faults.ineffective(["postgres"], injector.injected[:1])
