"""docs/integration.md's examples, run as a shop would run them, against real PostgreSQL.

The checkouts (psycopg, SQLAlchemy, Drizzle ORM through node) write the shop's
order and hookline's in one transaction; the callback module, named in
HOOKLINE_HANDLER_MODULES, keeps the shop's `public.orders` in step inside the
consumer's and the reconciler's transactions; the listeners (Python, node) hear
each change once it is committed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from hookline.consumer.build import consumer
from hookline.database import Connection
from hookline.handlers import registry
from hookline.reconcile.build import reconciler
from hookline.schema import DEFAULT_SCHEMA
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from tests.integration.test_consumer import metric_totals
from tests.support import events
from tests.support.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
JS_EXAMPLE = EXAMPLES / "js"
CALLBACK_MODULE = "shop_callbacks"
NODE_SECONDS = 60


def load_example(name: str) -> ModuleType:
    """A module of docs/examples/python, loaded from its file as the shop would run it."""
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", EXAMPLES / "python" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and SQLAlchemy look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def shop(db: Connection, database_url: str) -> str:
    """The shop's tables (docs/examples/shop_schema.sql) beside hookline's; the shop's
    connection string, which knows nothing of hookline's search_path."""
    db.execute((EXAMPLES / "shop_schema.sql").read_bytes())
    params = conninfo_to_dict(database_url)
    params.pop("options", None)
    return make_conninfo("", **params)


@pytest.fixture
def shop_db(shop: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(shop, autocommit=True, row_factory=dict_row) as connection:
        yield connection


@pytest.fixture
def callback_module(
    monkeypatch: pytest.MonkeyPatch, pipeline: Pipeline, reconcile: Any
) -> Iterator[None]:
    """docs/examples/python/shop_callbacks.py in HOOKLINE_HANDLER_MODULES, as a deploy sets it
    (after `pipeline` and `reconcile` set the template's environment, HandlerModules empty);
    unregistered afterwards so no other test runs it."""
    saved = registry.order_callbacks
    monkeypatch.syspath_prepend(str(EXAMPLES / "python"))
    monkeypatch.setenv("HOOKLINE_HANDLER_MODULES", CALLBACK_MODULE)
    consumer.cache_clear()
    reconciler.cache_clear()
    yield
    registry._order_callbacks[:] = saved
    sys.modules.pop(CALLBACK_MODULE, None)
    consumer.cache_clear()
    reconciler.cache_clear()


def checkout(shop: str) -> str:
    module = load_example("checkout_psycopg")
    with psycopg.connect(shop, autocommit=True) as connection:
        order_id = module.place_order(
            connection,
            "ada@example.com",
            [module.Item("tee-black-m", 2, 1500), module.Item("mug", 1, 900)],
            "usd",
            hookline_schema=DEFAULT_SCHEMA,
        )
    return str(order_id)


def shop_order(shop_db: psycopg.Connection[Any], order_id: str) -> dict[str, Any]:
    row: dict[str, Any] | None = shop_db.execute(
        "SELECT payment_status, paid_cents, refunded_cents, paid_at IS NOT NULL AS paid"
        " FROM public.orders WHERE id = %s",
        (order_id,),
    ).fetchone()
    assert row is not None
    return row


def hookline_order(db: Connection, order_id: str) -> dict[str, Any] | None:
    return db.execute(
        "SELECT amount, currency, status FROM orders WHERE id = %s", (order_id,)
    ).fetchone()


# The checkouts.


def test_the_psycopg_checkout_writes_both_orders_in_one_transaction(
    shop: str, shop_db: psycopg.Connection[Any], db: Connection
) -> None:
    order_id = checkout(shop)
    assert hookline_order(db, order_id) == {"amount": 3900, "currency": "usd", "status": "pending"}
    assert shop_order(shop_db, order_id)["payment_status"] == "unpaid"
    items = shop_db.execute("SELECT count(*) AS n FROM public.order_items").fetchone()
    assert items == {"n": 2}

    # hookline refuses the order (no such currency): the shop's order is not saved either.
    module = load_example("checkout_psycopg")
    with (
        psycopg.connect(shop, autocommit=True) as connection,
        pytest.raises(psycopg.errors.CheckViolation),
    ):
        module.place_order(connection, "bob@example.com", [module.Item("mug", 1, 900)], "us$")
    assert shop_db.execute("SELECT count(*) AS n FROM public.orders").fetchone() == {"n": 1}


def test_the_sqlalchemy_checkout_adds_hookline_s_order_in_the_shop_s_session(
    shop: str, shop_db: psycopg.Connection[Any], db: Connection
) -> None:
    pytest.importorskip("sqlalchemy", reason="the SQLAlchemy example needs sqlalchemy (dev extra)")
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    module = load_example("checkout_sqlalchemy")
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(shop)
    ).execution_options(schema_translate_map={"hookline": DEFAULT_SCHEMA})
    try:
        with Session(engine) as session:
            order_id = module.place_order(
                session, "ada@example.com", [("tee-black-m", 2, 1500)], "EUR"
            )
            saved = session.get(module.HooklineOrder, str(order_id))
            assert saved is not None
            assert saved.status == "pending"
    finally:
        engine.dispose()
    assert hookline_order(db, str(order_id)) == {
        "amount": 3000,
        "currency": "EUR",
        "status": "pending",
    }
    assert shop_order(shop_db, str(order_id))["payment_status"] == "unpaid"


# The Drizzle ORM example runs under node, from its lockfile.


@pytest.fixture(scope="session")
def node_example() -> Iterator[Path]:
    """The JS example with its node_modules (`npm ci`), cached across runs by lockfile."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed: the Drizzle example cannot run")
    digest = hashlib.sha256(
        (JS_EXAMPLE / "package.json").read_bytes() + (JS_EXAMPLE / "package-lock.json").read_bytes()
    ).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"hookline-examples-js-{digest}"
    if not (cache / "node_modules" / ".package-lock.json").exists():
        staging = Path(tempfile.mkdtemp(prefix="hookline-examples-js-"))
        for name in ("package.json", "package-lock.json"):
            shutil.copy(JS_EXAMPLE / name, staging)
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging,
            check=True,
            timeout=300,
        )
        try:
            staging.rename(cache)  # atomic: a concurrent run that won keeps its own
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    # The example's own files, fresh each session, beside the cached node_modules.
    run = Path(tempfile.mkdtemp(prefix="run-", dir=cache))
    for source in JS_EXAMPLE.glob("*.mjs"):
        shutil.copy(source, run)
    yield run
    shutil.rmtree(run, ignore_errors=True)


def node_environment(shop: str) -> dict[str, str]:
    """libpq's variables, which node-postgres reads too (sockets included)."""
    with psycopg.connect(shop) as connection:
        info = connection.info
        environment = {
            "PGHOST": info.host,
            "PGPORT": str(info.port),
            "PGUSER": info.user,
            "PGDATABASE": info.dbname,
            "HOOKLINE_SCHEMA": DEFAULT_SCHEMA,
        }
    password = conninfo_to_dict(shop).get("password")
    if password:
        environment["PGPASSWORD"] = str(password)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    base.pop("SHOP_DATABASE_URL", None)
    return {**base, **environment}


def test_the_drizzle_checkout_writes_both_orders_in_one_transaction(
    node_example: Path, shop: str, shop_db: psycopg.Connection[Any], db: Connection
) -> None:
    done = subprocess.run(
        ["node", "checkout.mjs", "ada@example.com", "tee-black-m:2:1500", "mug:1:900"],
        cwd=node_example,
        env=node_environment(shop),
        capture_output=True,
        text=True,
        timeout=NODE_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    placed = json.loads(done.stdout)
    assert placed["amount"] == 3900
    assert hookline_order(db, placed["order_id"]) == {
        "amount": 3900,
        "currency": "usd",
        "status": "pending",
    }
    assert shop_order(shop_db, placed["order_id"])["payment_status"] == "unpaid"


# Learning the outcome: the callback module.


@pytest.mark.usefixtures("callback_module")
def test_the_callback_marks_the_shop_s_order_paid_with_the_event(
    pipeline: Pipeline, shop: str, shop_db: psycopg.Connection[Any], db: Connection
) -> None:
    order_id = checkout(shop)
    pipeline.send([events.stripe("payment_intent.succeeded", amount=3900, order_id=order_id)])
    pipeline.drain()
    assert shop_order(shop_db, order_id) == {
        "payment_status": "paid",
        "paid_cents": 3900,
        "refunded_cents": 0,
        "paid": True,
    }
    pipeline.send(
        [events.stripe("charge.refunded", amount=3900, refunded=900, order_id=order_id, at=10)]
    )
    pipeline.drain()
    assert shop_order(shop_db, order_id) == {
        "payment_status": "partially_refunded",
        "paid_cents": 3900,
        "refunded_cents": 900,
        "paid": True,
    }


@pytest.mark.usefixtures("callback_module")
def test_a_broken_shop_table_rolls_the_event_back_and_it_applies_once_fixed(
    pipeline: Pipeline,
    shop: str,
    shop_db: psycopg.Connection[Any],
    db: Connection,
    output: pytest.CaptureFixture[str],
) -> None:
    order_id = checkout(shop)
    # A shop deploy renamed the column the callback writes: the callback fails.
    shop_db.execute("ALTER TABLE public.orders RENAME COLUMN paid_at TO paid_on")
    succeeded = events.stripe("payment_intent.succeeded", amount=3900, order_id=order_id)
    pipeline.send([succeeded])
    output.readouterr()
    # More deliveries than the event's own-failure budget: it is never parked.
    for _ in range(5):
        assert pipeline.run_once() is not None
    ledger = db.execute(
        "SELECT status, permanent_failures FROM webhook_events WHERE event_id = %s",
        (succeeded.event_id,),
    ).fetchone()
    assert ledger == {"status": "failed", "permanent_failures": 0}
    assert db.execute("SELECT count(*) AS n FROM parked_events").fetchone() == {"n": 0}
    # Neither side moved: hookline's order and the shop's are as before the event.
    assert hookline_order(db, order_id) == {"amount": 3900, "currency": "usd", "status": "pending"}
    assert shop_db.execute(
        "SELECT payment_status FROM public.orders WHERE id = %s", (order_id,)
    ).fetchone() == {"payment_status": "unpaid"}
    totals = metric_totals(output)
    assert totals["OrderCallbackFailed"] == 5
    assert totals["EventsFailed"] == 5

    shop_db.execute("ALTER TABLE public.orders RENAME COLUMN paid_on TO paid_at")
    pipeline.drain()
    assert shop_order(shop_db, order_id)["payment_status"] == "paid"
    assert hookline_order(db, order_id) == {"amount": 3900, "currency": "usd", "status": "paid"}


@pytest.mark.usefixtures("callback_module")
def test_the_reconciler_runs_the_callback_when_it_settles_an_orphan(
    pipeline: Pipeline,
    reconcile: Callable[[dict[str, Any]], dict[str, Any]],
    shop: str,
    shop_db: psycopg.Connection[Any],
    db: Connection,
) -> None:
    order_id = "7f1d3f5e-8a8b-4c65-9a39-2b7d3b1c0a11"
    # The payment arrives before the checkout's transaction commits its order.
    pipeline.send([events.stripe("payment_intent.succeeded", amount=900, order_id=order_id)])
    pipeline.drain()
    assert db.execute("SELECT status FROM webhook_events").fetchone() == {"status": "orphaned"}
    with psycopg.connect(shop, autocommit=True) as connection, connection.transaction():
        connection.execute(
            "INSERT INTO public.orders (id, customer_email, total_cents, currency)"
            " VALUES (%s, 'ada@example.com', 900, 'usd')",
            (order_id,),
        )
        connection.execute(
            sql.SQL("INSERT INTO {}.orders (id, amount, currency) VALUES (%s, 900, 'usd')").format(
                sql.Identifier(DEFAULT_SCHEMA)
            ),
            (order_id,),
        )
    assert reconcile({"action": "reconcile"})["orphans_settled"] == 1
    assert shop_order(shop_db, order_id)["payment_status"] == "paid"


# Learning the outcome: the listeners.


def test_the_python_listener_hears_the_change_once_committed(
    pipeline: Pipeline, shop: str, db: Connection
) -> None:
    module = load_example("listener")
    heard: list[dict[str, Any]] = []
    listening = threading.Event()
    listener = module.OrderListener(shop, heard.append, schema=DEFAULT_SCHEMA)
    thread = threading.Thread(
        target=listener.run_once,
        kwargs={"ready": listening.set, "stop_after": 1, "timeout": 30},
    )
    thread.start()
    try:
        assert listening.wait(30)
        order_id = checkout(shop)
        succeeded = events.stripe("payment_intent.succeeded", amount=3900, order_id=order_id)
        pipeline.send([succeeded])
        pipeline.drain()
    finally:
        thread.join(35)
    assert heard == [
        {
            "order_id": order_id,
            "status": "paid",
            "previous_status": "pending",
            "amount": 3900,
            "paid_amount": 3900,
            "refunded_amount": 0,
            "currency": "usd",
            "provider": "stripe",
            "event_id": succeeded.event_id,
            "event_type": "payment_intent.succeeded",
        }
    ]

    # Reconnecting, it re-reads what changed since it last listened: nothing is lost.
    missed: list[dict[str, Any]] = []
    listener.handle = missed.append
    listener.run_once(timeout=0.1)
    assert [(c["order_id"], c["status"]) for c in missed] == [(order_id, "paid")]


def test_the_drizzle_listener_hears_the_change_once_committed(
    node_example: Path, pipeline: Pipeline, shop: str, db: Connection
) -> None:
    process = subprocess.Popen(
        ["node", "listener.mjs", "--count", "1"],
        cwd=node_example,
        env=node_environment(shop),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # A listener that never starts or never hears must not hang the suite.
    watchdog = threading.Timer(NODE_SECONDS, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert json.loads(ready) == {"listening": True}, process.stderr
        order_id = checkout(shop)
        pipeline.send([events.stripe("payment_intent.succeeded", amount=3900, order_id=order_id)])
        pipeline.drain()
        out, err = process.communicate(timeout=NODE_SECONDS)
    finally:
        watchdog.cancel()
        process.kill()
    assert process.returncode == 0, err
    change = json.loads(out)
    assert (change["order_id"], change["status"], change["previous_status"]) == (
        order_id,
        "paid",
        "pending",
    )
