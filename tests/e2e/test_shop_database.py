"""`hookline local` against a shop's real database: two stacks, two schemas, one database,
and the shop's own tables (named like hookline's) never touched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hookline.database import connect

from tests.support.local_stack import LocalStackProcess, eventually
from tests.support.postgres import PostgresServer, fresh_database, insert_order
from tests.support.shop import create_shop_schema, dump_schema

pytestmark = pytest.mark.e2e

SCHEMAS = ("hookline_staging", "hookline_prod")


@pytest.fixture(scope="module")
def shop(postgres: PostgresServer) -> Iterator[tuple[str, str]]:
    """The shop's database, its tables full, hookline not yet in it: (url, public's dump)."""
    with fresh_database(postgres, None) as url:
        create_shop_schema(url)
        yield url, dump_schema(url, "public")


@pytest.fixture(scope="module")
def stacks(
    shop: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, LocalStackProcess]]:
    url, _ = shop
    started: dict[str, LocalStackProcess] = {}
    try:
        for schema in SCHEMAS:
            started[schema] = LocalStackProcess.start(
                tmp_path_factory.mktemp(schema) / ".hookline",
                ["--database-url", url, "--schema", schema, "--code", "source"],
            )
        yield started
    finally:
        for stack in started.values():
            assert stack.stop() == 0, stack.log_tail()


def ledger(url: str, schema: str) -> dict[str, str]:
    with connect(url, schema) as db:
        rows = db.execute("SELECT event_id, status FROM webhook_events").fetchall()
    return {row["event_id"]: row["status"] for row in rows}


def test_two_local_stacks_share_a_shops_database_without_crossing(
    shop: tuple[str, str], stacks: dict[str, LocalStackProcess]
) -> None:
    url, public_before = shop
    sent: dict[str, list[str]] = {}
    for schema, stack in stacks.items():
        with connect(url, schema) as db:
            insert_order(db, "shop-order-1", 2000)
        summary = stack.send("stripe", "payment_intent.succeeded", "--order", "shop-order-1")
        assert summary["answers"] == {"200": 1}
        sent[schema] = sorted({event["event_id"] for event in summary["events"]})

    for schema in SCHEMAS:

        def recorded(schema: str = schema) -> dict[str, str] | None:
            return ledger(url, schema) or None

        applied = eventually(recorded)
        assert applied == {event_id: "applied" for event_id in sent[schema]}, schema
        with connect(url, schema) as db:
            order: Any = db.execute(
                "SELECT status FROM orders WHERE id = 'shop-order-1'"
            ).fetchone()
        assert order == {"status": "paid"}, schema
        # `hookline status` reads the schema its stack runs in.
        report = stacks[schema].status()
        assert report["database"]["ledger"] == {"applied": len(sent[schema])}, schema

    assert dump_schema(url, "public") == public_before
