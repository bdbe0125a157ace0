"""Inside `hookline local`: PostgreSQL goes away, the scheduled reconciler opens the
circuit breaker (the consumer's pollers stop), nothing reaches the DLQ or is parked,
and once PostgreSQL is back the breaker closes and the event applies once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hookline.local.stack import aws_clients
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from tests.support.local_stack import LocalStackProcess, eventually
from tests.support.postgres import PostgresServer, fresh_database, insert_order
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e


@pytest.fixture
def database(postgres: PostgresServer) -> Iterator[str]:
    with fresh_database(postgres, None) as url:
        yield url


def test_a_database_outage_pauses_the_consumer_and_loses_nothing(
    postgres: PostgresServer, database: str, tmp_path: Path
) -> None:
    proxy = TcpProxy(postgres.address())
    proxy.start()
    through_proxy = make_conninfo(database, host="127.0.0.1", port=str(proxy.port))
    stack = LocalStackProcess.start(
        tmp_path / ".hookline",
        [
            "--database-url",
            through_proxy,
            "--code",
            "source",
            "--schedule-every",
            "2",
            "--parameter-overrides",
            "BreakerThreshold=1",
        ],
    )
    try:
        state = stack.state
        lambda_api = aws_clients(state["lambda_url"], state["region"], ("lambda",))["lambda"]
        (mapping,) = lambda_api.list_event_source_mappings(FunctionName="ConsumerFunction")[
            "EventSourceMappings"
        ]

        def mapping_state() -> str:
            return str(lambda_api.get_event_source_mapping(UUID=mapping["UUID"])["State"])

        with psycopg.connect(database, autocommit=True, row_factory=dict_row) as db:
            insert_order(db, "order-out", 2000)
        proxy.stop()  # PostgreSQL unreachable from the stack
        sent = stack.send("stripe", "payment_intent.succeeded", "--order", "order-out")
        assert sent["answers"] == {"200": 1}  # the receiver needs no database

        eventually(lambda: mapping_state() == "Disabled", timeout=120)
        assert "circuit breaker opened" in stack.log_tail(400)
        depth = stack.status()["queues"]
        assert depth["EventsDLQ"] == {"visible": 0, "in_flight": 0, "delayed": 0}
        assert depth["EventsQueue"]["visible"] + depth["EventsQueue"]["in_flight"] == 1

        proxy.start()  # PostgreSQL is back
        eventually(lambda: mapping_state() == "Enabled", timeout=120)

        def applied() -> bool:
            with psycopg.connect(database, row_factory=dict_row) as db:
                row = db.execute("SELECT status FROM orders WHERE id = 'order-out'").fetchone()
            return row == {"status": "paid"}

        eventually(applied, timeout=150)
        with psycopg.connect(database, row_factory=dict_row) as db:
            assert db.execute("SELECT count(*) AS n FROM parked_events").fetchone() == {"n": 0}
            ledger = db.execute("SELECT status FROM webhook_events").fetchall()
        assert ledger == [{"status": "applied"}]
    finally:
        assert stack.stop() == 0, stack.log_tail()
        proxy.stop()
