"""`hookline status`: is anything waiting, failing or needing a human?

Reads queue depths from SQS and the ledger, parked events and the last
reconciler run from PostgreSQL: for the local stack, from the CLI with its
state file's addresses; for a deployed stack, inside its ReconcilerFunction
(`{"action": "status"}`), which reaches its own queues and database.

The ledger counts an event a human resolved as `resolved`, not `parked`, so
its `parked` count and `parked.open` agree (a parking whose event never
reached the ledger counts in `parked` only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from hookline.database import connect, describe
from hookline.schema import DEFAULT_SCHEMA

_DEPTHS = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}
# Stack outputs that name queues, and what status calls them.
QUEUE_OUTPUTS = {"EventsQueueUrl": "EventsQueue", "EventsDLQUrl": "EventsDLQ"}


@dataclass(frozen=True)
class Target:
    name: str
    queues: Mapping[str, str]
    sqs: Any
    database_url: str | None
    schema: str = DEFAULT_SCHEMA


def queue_depths(sqs: Any, queues: Mapping[str, str]) -> dict[str, Any]:
    depths: dict[str, Any] = {}
    for name, url in queues.items():
        try:
            attributes = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=list(_DEPTHS.values())
            )
        except (BotoCoreError, ClientError) as error:
            depths[name] = {"error": type(error).__name__}
            continue
        values = attributes["Attributes"]
        depths[name] = {key: int(values.get(attribute, 0)) for key, attribute in _DEPTHS.items()}
    return depths


def database_status(url: str, schema: str = DEFAULT_SCHEMA) -> dict[str, Any]:
    try:
        with connect(url, schema, connect_timeout=5) as db:
            ledger = {
                row["status"]: row["count"]
                for row in db.execute(
                    "SELECT status, count(*) AS count FROM webhook_events GROUP BY status"
                )
            }
            orders = {
                row["status"]: row["count"]
                for row in db.execute(
                    "SELECT status, count(*) AS count FROM orders GROUP BY status"
                )
            }
            parked = db.execute(
                "SELECT id, provider, event_id, event_type, reason, parked_at FROM parked_events"
                " WHERE resolved_at IS NULL ORDER BY parked_at DESC, id DESC LIMIT 5"
            ).fetchall()
            # Counted from parked_events, as the ledger's parked/resolved rows are.
            parkings = db.execute(
                "SELECT count(*) FILTER (WHERE resolved_at IS NULL) AS open,"
                " count(*) FILTER (WHERE resolved_at IS NOT NULL) AS resolved"
                " FROM parked_events"
            ).fetchone()
            last_run = db.execute(
                "SELECT * FROM reconciliation_runs ORDER BY started_at DESC LIMIT 1"
            ).fetchone()
    except psycopg.Error as error:
        return {"error": describe(error)}
    return {
        "ledger": dict(sorted(ledger.items())),
        "orders": dict(sorted(orders.items())),
        "parked": {
            "open": parkings["open"] if parkings else 0,
            "resolved": parkings["resolved"] if parkings else 0,
            "latest": [{**row, "parked_at": row["parked_at"].isoformat()} for row in parked],
        },
        "last_reconciler_run": (
            {
                key: value.isoformat() if hasattr(value, "isoformat") else value
                for key, value in last_run.items()
            }
            if last_run
            else None
        ),
    }


def collect(target: Target) -> dict[str, Any]:
    report: dict[str, Any] = {
        "stack": target.name,
        "queues": queue_depths(target.sqs, target.queues),
    }
    if target.database_url:
        report["database"] = database_status(target.database_url, target.schema)
    else:
        report["database"] = {"error": "no database URL: pass --database-url or set DATABASE_URL"}
    return report


def render(report: Mapping[str, Any]) -> str:
    lines = [f"stack {report['stack']}"]
    for name, depth in report["queues"].items():
        if "error" in depth:
            lines.append(f"  {name:<12} unreachable ({depth['error']})")
        else:
            lines.append(
                f"  {name:<12} {depth['visible']} waiting, {depth['in_flight']} in flight, "
                f"{depth['delayed']} delayed"
            )
    database = report["database"]
    if "error" in database:
        lines.append(f"database: {database['error']}")
        return "\n".join(lines)
    ledger = ", ".join(f"{k} {v}" for k, v in database["ledger"].items()) or "empty"
    orders = ", ".join(f"{k} {v}" for k, v in database["orders"].items()) or "none"
    lines.append(f"ledger: {ledger}")
    lines.append(f"orders: {orders}")
    parked = database["parked"]
    lines.append(f"parked: {parked['open']} open, {parked['resolved']} resolved")
    # The number is what `hookline parked show` and `resolve` take (the event id works too).
    lines += [
        f"  #{p['id']} {p['provider']} {p['event_id']}: {p['reason']} (since {p['parked_at']})"
        for p in parked["latest"]
    ]
    run = database["last_reconciler_run"]
    if run is None:
        lines.append("last reconciler run: none yet")
    else:
        lines.append(f"last reconciler run: {run['started_at']} {run['status']}")
    return "\n".join(lines)
