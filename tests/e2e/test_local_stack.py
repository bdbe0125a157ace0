"""The whole pipeline on one machine: `hookline local` started as a user starts it,
events posted over HTTP by `hookline send`, results read from PostgreSQL and SQS."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import psycopg
import pytest
import yaml
from hookline.errors import EXIT_CONFIGURATION
from hookline.local.stack import STATE_FILE, aws_clients, read_state
from psycopg.rows import dict_row

from tests.support.local_stack import LocalStackProcess, cli, eventually
from tests.support.postgres import PostgresServer, fresh_database, insert_order

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def database(postgres: PostgresServer) -> Iterator[str]:
    """An empty database: `hookline local` runs the migrations itself."""
    with fresh_database(postgres, None) as url:
        yield url


@pytest.fixture(scope="module")
def stack(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackProcess]:
    started = LocalStackProcess.start(
        tmp_path_factory.mktemp("local") / ".hookline",
        # The reconciler's rate(5 minutes), shortened so its runs happen within a test.
        [
            "--database-url",
            database,
            "--code",
            "source",
            "--schedule-every",
            "2",
            # A sender hookline has no module for, described by configuration.
            "--generic-providers",
            str(ROOT / "config" / "generic-providers.example.json"),
        ],
    )
    yield started
    assert started.stop() == 0, started.log_tail()


@pytest.fixture
def db(database: str, stack: LocalStackProcess) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database, autocommit=True, row_factory=dict_row) as connection:
        yield connection


def ledger(db: psycopg.Connection[Any], event_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = db.execute(
        "SELECT event_id, status, attempts, order_id FROM webhook_events WHERE event_id = ANY(%s)",
        (event_ids,),
    ).fetchall()
    return {row["event_id"]: row for row in rows}


def event_ids(summary: dict[str, Any]) -> list[str]:
    return sorted({event["event_id"] for event in summary["events"]})


def order_status(db: psycopg.Connection[Any], order_id: str) -> str | None:
    row = db.execute("SELECT status FROM orders WHERE id = %s", (order_id,)).fetchone()
    return None if row is None else str(row["status"])


def settled(db: psycopg.Connection[Any], ids: list[str]) -> dict[str, dict[str, Any]] | None:
    """The ledger rows once every event has a final status, else None."""
    rows = ledger(db, ids)
    final = {"applied", "stale", "ignored", "orphaned", "parked"}
    done = len(rows) == len(ids) and all(r["status"] in final for r in rows.values())
    return rows if done else None


def test_payments_from_several_providers_are_applied(
    stack: LocalStackProcess, db: psycopg.Connection[Any]
) -> None:
    insert_order(db, "e2e-stripe-1", 2000)
    insert_order(db, "e2e-square-1", 1500)
    insert_order(db, "e2e-mp-1", 10050, "BRL")
    stripe = stack.send("stripe", "payment_intent.succeeded", "--order", "e2e-stripe-1")
    square = stack.send("square", "payment.updated", "--order", "e2e-square-1", "--amount", "1500")
    shopify = stack.send("shopify", "orders/paid", "--amount", "4599")
    # A thin event: the consumer fetches the payment from the stack's provider sandbox.
    mercadopago = stack.send(
        "mercadopago", "payment", "--order", "e2e-mp-1", "--amount", "10050", "--currency", "BRL"
    )
    summaries = [stripe, square, shopify, mercadopago]
    assert [s["answers"] for s in summaries] == [{"200": 1}] * 4

    rows = eventually(lambda: settled(db, [i for s in summaries for i in event_ids(s)]))
    assert {row["status"] for row in rows.values()} == {"applied"}
    assert order_status(db, "e2e-stripe-1") == "paid"
    assert order_status(db, "e2e-square-1") == "paid"
    assert order_status(db, "e2e-mp-1") == "paid"
    # The functions' metrics reach CloudWatch, as Lambda's log pipeline puts them there.
    cloudwatch = aws_clients(stack.state["endpoint_url"], stack.state["region"])["cloudwatch"]
    names = eventually(
        lambda: (
            {m["MetricName"] for m in cloudwatch.list_metrics(Namespace="Hookline")["Metrics"]}
            >= {"WebhooksAccepted", "EventsApplied"}
        )
    )
    assert names
    shopify_order = rows[event_ids(shopify)[0]]["order_id"]
    order = db.execute(
        "SELECT status, amount FROM orders WHERE id = %s", (shopify_order,)
    ).fetchone()
    assert order == {"status": "paid", "amount": 4599}


# Every provider added by configuration or module since the first seven, by the event
# that pays an order, and its currency (eSewa and Khalti are Nepal's: rupees).
PAYING_EVENTS = [
    ("paddle", "transaction.completed", "USD"),
    ("adyen", "AUTHORISATION", "EUR"),
    ("esewa", "payment", "NPR"),
    ("khalti", "payment", "NPR"),
    ("mollie", "payment", "EUR"),
    ("razorpay", "payment.captured", "INR"),
    ("lemonsqueezy", "order_created", "USD"),
]


def test_every_newer_provider_pays_its_order_through_the_local_stack(
    stack: LocalStackProcess, db: psycopg.Connection[Any]
) -> None:
    sent = []
    for provider, event_type, currency in PAYING_EVENTS:
        order_id = f"e2e-{provider}-1"
        insert_order(db, order_id, 2500, currency)
        summary = stack.send(
            provider, event_type, "--order", order_id, "--amount", "2500", "--currency", currency
        )
        assert summary["answers"] == {"200": 1}, (provider, summary)
        sent.append(summary)
    rows = eventually(lambda: settled(db, [i for s in sent for i in event_ids(s)]))
    assert {row["status"] for row in rows.values()} == {"applied"}, rows
    for provider, _, _ in PAYING_EVENTS:
        assert order_status(db, f"e2e-{provider}-1") == "paid", provider
    # WooCommerce is the shop's order system: its order is the one the event creates.
    woocommerce = stack.send("woocommerce", "order.created,order.updated", "--amount", "2500")
    assert woocommerce["answers"] == {"200": 2}
    rows = eventually(lambda: settled(db, event_ids(woocommerce)))
    (order_id,) = {row["order_id"] for row in rows.values()}
    assert order_status(db, order_id) == "paid"


def test_a_generic_sender_is_verified_and_queued_by_configuration(
    stack: LocalStackProcess, db: psycopg.Connection[Any]
) -> None:
    """Paystack, configured in config/generic-providers.example.json: a signed charge is
    accepted and recorded (`ignored`: no handler module here; docs/examples/python/
    paystack_handlers.py applies it, tests/integration/test_generic_sender.py), a forged
    one is refused."""
    secret = json.loads((ROOT / "config" / "local-secrets.example.json").read_text())["paystack"][0]
    body = json.dumps(
        {
            "event": "charge.success",
            "data": {
                "id": 4099260516,
                "reference": "e2e-paystack-1",
                "amount": 2500,
                "currency": "NGN",
            },
        }
    ).encode()

    def post(key: str) -> int:
        signature = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
        request = urllib.request.Request(  # noqa: S310
            f"{stack.url}/webhooks/paystack",
            data=body,
            headers={"x-paystack-signature": signature, "content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return error.code

    assert post("sk_test_forged") == 401
    assert post(secret) == 200
    rows = eventually(lambda: settled(db, ["charge.success:4099260516"]))
    assert rows["charge.success:4099260516"]["status"] == "ignored"


LIFECYCLE = "payment_intent.created,payment_intent.succeeded,charge.refunded"


def final_states(db: psycopg.Connection[Any], prefix: str) -> list[tuple[Any, ...]]:
    rows = db.execute(
        "SELECT o.status AS order_status, o.paid_amount, o.refunded_amount, p.status, "
        "p.amount_refunded FROM orders o JOIN payments p ON p.order_id = o.id "
        "WHERE o.id LIKE %s ORDER BY o.id",
        (f"{prefix}-%",),
    ).fetchall()
    return [tuple(row.values()) for row in rows]


def test_duplicates_and_shuffled_lifecycles_converge(
    stack: LocalStackProcess, db: psycopg.Connection[Any]
) -> None:
    for index in (1, 2, 3):
        insert_order(db, f"e2e-seq-{index}", 2000)
        insert_order(db, f"e2e-mix-{index}", 2000)
    in_order = stack.send(
        "stripe", LIFECYCLE, "--count", "3", "--order", "e2e-seq", "--concurrency", "1"
    )
    shuffled = stack.send(
        "stripe",
        LIFECYCLE,
        "--count",
        "3",
        "--order",
        "e2e-mix",
        "--duplicates",
        "2",
        "--shuffle",
        "--seed",
        "42",
    )
    assert in_order["answers"] == {"200": 9}
    assert shuffled["answers"] == {"200": 27}

    mixed = eventually(lambda: settled(db, event_ids(shuffled)))
    eventually(lambda: settled(db, event_ids(in_order)))
    # Each of the 9 distinct events has one ledger row, whatever arrived three times.
    assert len(mixed) == 9
    expected = [("refunded", 2000, 2000, "refunded", 2000)] * 3
    assert eventually(lambda: final_states(db, "e2e-seq") == expected or None)
    assert eventually(lambda: final_states(db, "e2e-mix") == expected or None)


def test_a_forged_request_is_refused_and_nothing_is_queued(
    stack: LocalStackProcess, db: psycopg.Connection[Any]
) -> None:
    forged = stack.send("stripe", "payment_intent.succeeded", "--forge")
    assert forged["answers"] == {"401": 1}

    def drained() -> bool:
        depth = stack.status()["queues"]["EventsQueue"]
        return bool(depth["visible"] == 0 and depth["in_flight"] == 0)

    eventually(drained)
    assert ledger(db, event_ids(forged)) == {}


def test_a_poison_event_is_parked_by_the_consumer_and_the_operator_commands_work(
    stack: LocalStackProcess, db: psycopg.Connection[Any]
) -> None:
    # Validly signed, but no currency code: it can never apply.
    poison = stack.send("stripe", "payment_intent.succeeded", "--currency", "X")
    assert poison["answers"] == {"200": 1}
    (event_id,) = event_ids(poison)

    def parked() -> dict[str, Any] | None:
        row = db.execute(
            "SELECT reason, last_error FROM parked_events WHERE event_id = %s", (event_id,)
        ).fetchone()
        return dict(row) if row else None

    # Its own failures (MAX_PERMANENT_FAILURES, 3) park it; it never reaches the DLQ.
    assert eventually(parked, timeout=120)["reason"] == "permanent_failure"
    (row,) = ledger(db, [event_id]).values()
    assert (row["status"], row["attempts"]) == ("parked", 3)
    # The scheduled reconciler runs beside it, and has nothing to park.
    runs = eventually(
        lambda: db.execute(
            "SELECT count(*) AS n, sum(parked) AS parked FROM reconciliation_runs"
            " WHERE status = 'succeeded' HAVING count(*) > 0"
        ).fetchone()
    )
    assert runs["parked"] == 0
    assert stack.status()["queues"]["EventsDLQ"]["visible"] == 0

    # The operator's commands reach the stack's reconciler through the Lambda Invoke API.
    listed = cli("parked", "--data-dir", str(stack.data_dir), "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = [p for p in json.loads(listed.stdout)["parked"] if p["event_id"] == event_id]
    shown = cli("parked", "show", str(entry["id"]), "--data-dir", str(stack.data_dir))
    assert '"currency"' in shown.stdout
    resolved = cli(
        "parked",
        "resolve",
        str(entry["id"]),
        "--note",
        "bad test event",
        "--data-dir",
        str(stack.data_dir),
    )
    assert resolved.stdout.strip() == f"resolved #{entry['id']} (stripe {event_id})"
    redriven = cli("redrive", "--data-dir", str(stack.data_dir))
    assert redriven.returncode == 0, redriven.stderr
    assert redriven.stdout.startswith("redriven ")
    replayed = cli("replay", event_id, "--data-dir", str(stack.data_dir), "--json")
    assert json.loads(replayed.stdout)["replayed"][0].startswith(f"{event_id}:replay:")


class _TemplateLoader(yaml.SafeLoader):
    """Reads template.yaml independently of hookline.template: tags become plain values."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


_TemplateLoader.add_multi_constructor("!", _tagged)


def test_the_local_stack_is_wired_as_template_yaml_says(stack: LocalStackProcess) -> None:
    document = yaml.load((ROOT / "template.yaml").read_text(), Loader=_TemplateLoader)  # noqa: S506
    resources = document["Resources"]
    parameters = {name: p.get("Default") for name, p in document["Parameters"].items()}
    state = stack.state
    global_env = set(document["Globals"]["Function"]["Environment"]["Variables"])

    functions = {n: r["Properties"] for n, r in resources.items() if r["Type"].endswith("Function")}
    assert set(state["functions"]) == set(functions)
    routes = set()
    for name, properties in functions.items():
        running = state["functions"][name]
        assert running["handler"] == properties["Handler"]
        assert Path(running["code_dir"]) == (ROOT / properties["CodeUri"]).resolve()
        declared = global_env | set(properties.get("Environment", {}).get("Variables", {}))
        assert set(running["environment"]) == declared
        for event in properties.get("Events", {}).values():
            if event["Type"] == "HttpApi":
                routes.add((event["Properties"]["Method"], event["Properties"]["Path"], name))
            if event["Type"] == "SQS":
                (source,) = state["queue_sources"]
                assert source["batch_size"] == event["Properties"]["BatchSize"]
                maximum = event["Properties"]["ScalingConfig"]["MaximumConcurrency"]["Ref"]
                assert source["maximum_concurrency"] == parameters[maximum]
    assert {(r["method"], r["path"], r["function"]) for r in state["routes"]} == routes
    schedules = {
        (name, parameters[event["Properties"]["Schedule"]["Ref"]])
        for name, properties in functions.items()
        for event in properties.get("Events", {}).values()
        if event["Type"] == "Schedule"
    }
    assert schedules == {("ReconcilerFunction", "rate(5 minutes)")}
    assert {(s["function"], s["expression"]) for s in state["schedules"]} == schedules

    sqs = aws_clients(state["endpoint_url"], state["region"])["sqs"]
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=state["queues"]["EventsDLQ"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    for name in ("EventsQueue", "EventsDLQ"):
        declared = resources[name]["Properties"]
        actual = sqs.get_queue_attributes(QueueUrl=state["queues"][name], AttributeNames=["All"])[
            "Attributes"
        ]
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize"):
            if key in declared:
                assert int(actual[key]) == declared[key], (name, key)
        assert actual["FifoQueue"] == "true"
        assert (
            actual["ContentBasedDeduplication"]
            == str(declared["ContentBasedDeduplication"]).lower()
        )
        if "RedrivePolicy" in declared:
            import json

            policy = json.loads(actual["RedrivePolicy"])
            assert policy["deadLetterTargetArn"] == dlq_arn
            assert policy["maxReceiveCount"] == parameters["MaxReceiveCount"]

    # Served exactly as routed: a path the template does not route is API Gateway's 404.
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(f"{stack.url}/health", timeout=10) as answer:  # noqa: S310
        assert answer.status == 200
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{stack.url}/webhooks/stripe", timeout=10)  # noqa: S310
    assert missing.value.code == 404
    assert missing.value.read() == b'{"message": "Not Found"}'


def test_a_port_in_use_is_a_clear_error(stack: LocalStackProcess, tmp_path: Path) -> None:
    port = stack.url.rsplit(":", 1)[1]
    result = cli(
        "local",
        "--port",
        port,
        "--code",
        "source",
        "--data-dir",
        str(tmp_path / ".hookline"),
        "--database-url",
        stack.state["database_url"],
        timeout=120,
    )
    assert result.returncode == EXIT_CONFIGURATION, result.stdout + result.stderr
    assert f"127.0.0.1:{port} is in use" in result.stdout + result.stderr


def test_a_second_stack_on_the_same_data_folder_is_refused(stack: LocalStackProcess) -> None:
    before = (stack.data_dir / STATE_FILE).read_text()
    # Another port, so only the folder is shared: it is refused before anything starts.
    result = cli(
        "local",
        "--port",
        "0",
        "--code",
        "source",
        "--data-dir",
        str(stack.data_dir),
        "--database-url",
        stack.state["database_url"],
        timeout=120,
    )
    assert result.returncode == EXIT_CONFIGURATION, result.stdout + result.stderr
    refusal = (
        f"a local stack already runs from {stack.data_dir} ({stack.url}, pid {stack.process.pid}):"
        " stop it first, or pass --data-dir"
    )
    assert refusal in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # The first still serves, from the state file it wrote.
    assert (stack.data_dir / STATE_FILE).read_text() == before
    assert stack.status()["queues"]["EventsQueue"]["visible"] >= 0


def postgres_processes(pgdata: Path) -> list[int]:
    """Every PostgreSQL process of `pgdata` still running (by its command line)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] != psutil.STATUS_ZOMBIE and str(pgdata) in " ".join(cmdline):
            found.append(int(process.info["pid"]))
    return found


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


def test_stop_and_restart_keep_the_embedded_database(tmp_path: Path) -> None:
    data_dir = tmp_path / ".hookline"
    pgdata = (data_dir / "postgres" / "pgdata").resolve()
    first = LocalStackProcess.start(data_dir, ["--code", "source"])
    try:
        sent = first.send("stripe", "payment_intent.succeeded")
        assert sent["answers"] == {"200": 1}
        eventually(lambda: first.status()["database"]["ledger"].get("applied") == 1)
        # Not an envelope: no ledger row to judge it by, so SQS moves it to the DLQ.
        state = first.state
        aws_clients(state["endpoint_url"], state["region"])["sqs"].send_message(
            QueueUrl=state["queues"]["EventsQueue"],
            MessageBody="not an envelope",
            MessageGroupId="junk",
            MessageDeduplicationId="junk",
        )
        eventually(lambda: first.status()["queues"]["EventsDLQ"]["visible"] == 1)
    finally:
        assert first.stop() == 0, first.log_tail()
    assert not (data_dir / STATE_FILE).exists()
    # moto's queues live in memory: the stop says what it loses.
    assert "EventsDLQ still holds 1 message(s)" in first.log_tail()
    assert "stopped" in first.log_tail()
    assert postgres_processes(pgdata) == []

    # kill -9: no stop runs; its PostgreSQL and its state file are left behind.
    second = LocalStackProcess.start(data_dir, ["--code", "source"])
    try:
        assert second.status()["database"]["ledger"] == {"applied": 1}
        orphan = postmaster_pid(pgdata)
        moto = [
            child
            for child in psutil.Process(second.process.pid).children()
            if "hookline.local.moto_process" in " ".join(child.cmdline())
        ]
        assert len(moto) == 2  # DynamoDB's own, and the rest
    finally:
        second.kill()
    assert orphan in postgres_processes(pgdata)
    # moto has no data to keep: its processes end with the stack, however it ends.
    eventually(lambda: not any(_alive(process) for process in moto), timeout=30)
    assert read_state(data_dir) is None  # the file is there, the stack is not
    assert cli("status", "--data-dir", str(data_dir)).returncode != 0

    third = LocalStackProcess.start(data_dir, ["--code", "source"])
    try:
        log = third.log_tail(200)
        assert f"stopped PostgreSQL pid {orphan}, left running by a run that was killed" in log
        assert f"left by a run that ended without stopping (pid {second.process.pid})" in log
        assert orphan not in postgres_processes(pgdata)
        assert third.status()["database"]["ledger"] == {"applied": 1}
        # The embedded server listens on TCP too, with a password: what containers use.
        tcp_url = third.state["database_tcp_url"]
        assert tcp_url.startswith("postgresql://postgres:")
        with psycopg.connect(tcp_url) as connection:
            assert connection.execute("SELECT current_database()").fetchone() == ("hookline",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(re.sub(r":[^:@/]+@", ":wrong@", tcp_url)).close()
    finally:
        assert third.stop() == 0, third.log_tail()
    assert not (pgdata / "postmaster.pid").exists()
    assert postgres_processes(pgdata) == []

    # A second Ctrl-C while stopping exits at once, and still leaves no server running.
    fourth = LocalStackProcess.start(data_dir, ["--code", "source"])
    fourth.process.send_signal(signal.SIGINT)
    eventually(lambda: fourth.process.poll() is not None or "stopping" in fourth.log_tail(500))
    if fourth.process.poll() is None:  # a clean stop may already have finished
        fourth.process.send_signal(signal.SIGINT)
    fourth.process.wait(60)
    eventually(lambda: postgres_processes(pgdata) == [], timeout=30)
