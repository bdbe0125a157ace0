"""Operator actions: event inspection, replay from the ledger, and parked events.

Every action's request is a pydantic model, validated before any database work:
a request that is not well formed raises `InvalidRequest`, one line naming the
field and what it accepts. Times are ISO-8601 strings (naive means UTC); the
CLI turns relative forms (`2h`) into them before sending.

A replay re-sends a ledger row's stored payload through the queue and the same
apply path, as a new event `<event_id>:replay:<nonce>` (headers name the
original). The nonce keeps SQS deduplication, the idempotency store and the
ledger from swallowing an intended replay. The payment rules are idempotent
and never move a payment backwards, so replaying an event whose effect is
already there changes nothing (recorded `applied`, or `stale` if newer events
came since); it restores an effect that was lost (a database restore, a
handler fixed after the fact).

A replay stops starting sends before the invocation's deadline and says what
it sent (`more`: matched events it did not send); a send that fails ends it,
and the error answer still lists what was sent before it. Never retried: the
CLI invokes once, and a second request is a new replay with a new nonce.

Resolving a parked event closes its parking and, in the same transaction,
moves its ledger row from `parked` (needs a human) to `resolved`. It locks the
ledger row before the parking, the order the consumer's park takes them in.

A parking is named by its number (`7`, `#7`) or its event id. A digit string
that is both a parking's number and another parking's event id (Shopify's ids
are digits) is refused as ambiguous; `#7` is always the number.

Inspection reads run under the session's statement timeout; a read cancelled
by it answers OperatorRefused, saying how to narrow the request.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, LiteralString, Self

import psycopg
from psycopg import sql
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hookline.database import Connection
from hookline.deadline import Deadline
from hookline.envelope import MAX_EVENT_ID_CHARS, RECOVERED_HEADER, REPLAY_OF_HEADER, Envelope
from hookline.errors import HooklineError, InvalidRequest, NotFound, OperatorRefused
from hookline.inspection import DEFAULT_LIMIT, EVENT_FIELDS, MAX_LIMIT, LedgerStatus
from hookline.metric_names import Metric
from hookline.observability import count, logger
from hookline.queue import EventQueue
from hookline.storable import is_storable_text

# The replay a resolution sends is named after the parking, not a random
# nonce: retrying a resolve whose commit failed re-sends the same event, which
# SQS and the ledger then drop.
RESOLVE_NONCE = "parked-{id}"

MAX_REPLAY = 1000
# One SQS send's worst case under hookline.aws.CLIENT_CONFIG (3 attempts of 2 s
# connect and 5 s read, and backoff): a send is not started with less left.
REPLAY_SEND_SECONDS = 25.0
# A parked_events id is a bigint: a larger number can only be an event id.
MAX_PARKED_ID = 2**63 - 1
MAX_TEXT_CHARS = 2000
# The parked list's last_error is a summary for a table; `parked show` has it whole.
ERROR_SUMMARY_CHARS = 120

_EVENT_COLUMNS = ", ".join(f"e.{name}" for name in EVENT_FIELDS)

# The payment an event touched: its object id, or, for Stripe's charge and
# checkout events, the payment intent they name beside their own id.
_PAYMENT_OF_EVENT = (
    "p.provider = e.provider AND p.provider_payment_id IN"
    " (e.object_id, e.payload #>> '{data,object,payment_intent}')"
)


# --- request models -------------------------------------------------------------------


def _text(what: str, max_chars: int = MAX_TEXT_CHARS) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise PydanticCustomError("hookline", f"expected {what}")
        value = value.strip()
        if len(value) > max_chars or not is_storable_text(value):
            raise PydanticCustomError("hookline", f"expected {what} (at most {max_chars} chars)")
        return value

    return BeforeValidator(check)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            # Naive means UTC, whatever the reconciler's own zone.
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise PydanticCustomError(
        "hookline", "expected an ISO-8601 time such as 2024-05-01T12:00:00Z (naive means UTC)"
    )


def _limit(value: Any) -> Any:
    # pydantic would read true as 1.
    if isinstance(value, bool):
        raise PydanticCustomError("hookline", "expected a whole number")
    return value


def _flag(value: Any) -> Any:
    if not isinstance(value, bool):
        raise PydanticCustomError("hookline", "expected true or false")
    return value


def _status(value: Any) -> Any:
    if value is None or value in tuple(LedgerStatus):
        return value
    raise PydanticCustomError(
        "hookline", f"expected a ledger status: {', '.join(s.value for s in LedgerStatus)}"
    )


def _parked_ref(value: Any) -> int | str:
    """A parked number (an int, or `#N`), or text: an event id, or digits resolved later."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PARKED_ID:
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text.startswith("#"):
        digits = text[1:]
        if digits.isascii() and digits.isdigit() and 1 <= int(digits) <= MAX_PARKED_ID:
            return int(digits)
        raise PydanticCustomError("hookline", "expected a parked event's number, #1 or more")
    if text and len(text) <= MAX_EVENT_ID_CHARS and is_storable_text(text):
        return text
    raise PydanticCustomError("hookline", "expected a parked event's number or its event id")


Provider = Annotated[str | None, _text("a provider name", 100)]
EventId = Annotated[str | None, _text("an event id", MAX_EVENT_ID_CHARS)]
Time = Annotated[datetime | None, BeforeValidator(_time)]
Limit = Annotated[int, BeforeValidator(_limit), Field(ge=1, le=MAX_LIMIT)]
Flag = Annotated[bool, BeforeValidator(_flag)]
ParkedRef = Annotated[int | str, BeforeValidator(_parked_ref)]


# What a field accepts, for messages about a wrong or missing value.
WANTS = {
    "id": "a parked event's number (#N) or its event id",
    "event_id": "an event id",
    "resolution": "a note saying how it was resolved",
    "limit": f"a whole number from 1 to {MAX_LIMIT}",
    "payload": "true or false",
    "replay": "true or false",
}


class Request(BaseModel):
    """One action's fields; an unknown field is refused (a typo must not widen a request)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, action: str, request: Mapping[str, Any]) -> Self:
        fields = {key: value for key, value in request.items() if key != "action"}
        try:
            return cls.model_validate(fields)
        except ValidationError as error:
            raise InvalidRequest(_explain(cls, action, error)) from None


def _explain(model: type[Request], action: str, error: ValidationError) -> str:
    """The first problem, in one line that names the field and what it accepts."""
    problem = error.errors(include_url=False)[0]
    field = ".".join(str(part) for part in problem["loc"][:1])
    kind = problem["type"]
    if kind == "extra_forbidden":
        accepted = ", ".join(model.model_fields) or "none"
        return f"{action}: unknown field {field!r}; accepted fields: {accepted}"
    if kind == "missing":
        return f"{action}: {field} is required ({WANTS.get(field, 'a value')})"
    if not field:  # a rule across fields (since before until, ...)
        return f"{action}: {problem['msg']}"
    # Our own validators say what they expect; pydantic's wording is replaced by ours.
    wanted = problem["msg"] if kind == "hookline" else f"expected {WANTS.get(field, 'a value')}"
    got = repr(problem.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    return f"{action}: {field}: {wanted}, got {got}"


class _Window(Request):
    since: Time = None
    until: Time = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise PydanticCustomError("hookline", "since must be before until")
        return self


class StatusRequest(Request):
    pass


class RunRequest(Request):
    """`redrive` and `reconcile`."""


class ReplayRequest(_Window):
    event_id: EventId = None
    provider: Provider = None
    type: Annotated[str | None, _text("an event type", 200)] = None
    # With `since`: resume strictly after this event at that moment (a replay cut
    # short answers both), so events sharing one moment are never sent forever again.
    after: EventId = None

    @model_validator(mode="after")
    def _range_names_a_provider(self) -> Self:
        if self.event_id is None and self.provider is None:
            raise PydanticCustomError(
                "hookline", "give event_id, or provider for a range (with type, since, until)"
            )
        if self.event_id is not None and (self.type or self.since or self.until or self.after):
            raise PydanticCustomError(
                "hookline", "event_id replays that one event: drop type, since, until and after"
            )
        if self.after is not None and self.since is None:
            raise PydanticCustomError(
                "hookline", "after resumes a range at since: give since (resume_since) too"
            )
        return self


class EventsRequest(_Window):
    provider: Provider = None
    type: Annotated[str | None, _text("an event type", 200)] = None
    status: Annotated[str | None, BeforeValidator(_status)] = None
    order: Annotated[str | None, _text("the shop's order id", 500)] = None
    limit: Limit = DEFAULT_LIMIT


class EventRequest(Request):
    event_id: Annotated[str, _text("an event id", MAX_EVENT_ID_CHARS)]
    provider: Provider = None
    payload: Flag = False


class ParkedRequest(Request):
    id: ParkedRef | None = None
    provider: Provider = None
    limit: Limit = DEFAULT_LIMIT


class ResolveRequest(Request):
    id: ParkedRef
    provider: Provider = None
    resolution: Annotated[str, _text("a note saying how it was resolved")]
    replay: Flag = False


REQUESTS: dict[str, type[Request]] = {
    "status": StatusRequest,
    "redrive": RunRequest,
    "reconcile": RunRequest,
    "events": EventsRequest,
    "event": EventRequest,
    "replay": ReplayRequest,
    "parked": ParkedRequest,
    "resolve": ResolveRequest,
}


# --- answers --------------------------------------------------------------------------


def error_answer(error: HooklineError) -> dict[str, Any]:
    """A refused or failed request's answer: one line, and the errors table's row by name."""
    message = " ".join(str(error).split()) or type(error).__name__
    return {"ok": False, "error": message, "kind": type(error).__name__}


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _summary(error: str | None) -> str | None:
    if error is None:
        return None
    line = error.strip().splitlines()[0] if error.strip() else ""
    return line if len(line) <= ERROR_SUMMARY_CHARS else line[: ERROR_SUMMARY_CHARS - 3] + "..."


def _one_provider(event_id: str, providers: set[str]) -> str:
    if len(providers) > 1:
        raise OperatorRefused(
            f"event {event_id} exists for several providers ({', '.join(sorted(providers))}):"
            " name the provider"
        )
    (provider,) = providers
    return provider


# --- events ---------------------------------------------------------------------------


# The ledger rows of an order: those naming it, and those of its payments (by object
# id, or, for Stripe's charge and checkout events, the payment intent they name).
# Each arm is an index lookup (migration 0005), never a scan of the ledger.
_OF_ORDER = (
    "SELECT provider, event_id FROM webhook_events WHERE order_id = %(order)s"
    " UNION ALL SELECT w.provider, w.event_id FROM payments p JOIN webhook_events w"
    " ON w.provider = p.provider AND w.object_id = p.provider_payment_id"
    " WHERE p.order_id = %(order)s"
    " UNION ALL SELECT w.provider, w.event_id FROM payments p JOIN webhook_events w"
    " ON w.provider = p.provider"
    " AND w.payload #>> '{data,object,payment_intent}' = p.provider_payment_id"
    # Implies the partial index's predicate to the planner.
    " AND w.payload #>> '{data,object,payment_intent}' IS NOT NULL"
    " WHERE p.order_id = %(order)s"
)
# Only the filters given, so the planner sees no `$1 IS NULL OR ...` to plan around.
_EVENT_FILTERS: dict[str, LiteralString] = {
    "provider": "e.provider = %(provider)s",
    "type": "e.event_type = %(type)s",
    "status": "e.status = %(status)s",
    "since": "e.received_at >= %(since)s",
    "until": "e.received_at < %(until)s",
    "order": f"(e.provider, e.event_id) IN ({_OF_ORDER})",
}


def events_query(request: EventsRequest) -> tuple[sql.Composed, dict[str, Any]]:
    """The `events` statement and its parameters (for EXPLAIN in tests, too)."""
    fields = request.model_dump()
    where = [
        sql.SQL(condition) for name, condition in _EVENT_FILTERS.items() if fields[name] is not None
    ]
    # Composed, not formatted: the filters hold JSON paths in braces.
    query = (
        sql.SQL(f"SELECT {_EVENT_COLUMNS} FROM webhook_events e WHERE ")  # noqa: S608
        + (sql.SQL(" AND ").join(where) if where else sql.SQL("TRUE"))
        + sql.SQL(" ORDER BY e.received_at DESC, e.event_id DESC, e.provider LIMIT %(more)s")
    )
    return query, {**fields, "more": request.limit + 1}


@contextmanager
def _in_time(hint: str) -> Iterator[None]:
    """A read the statement timeout cancelled is refused as asked, with how to narrow it."""
    try:
        yield
    except psycopg.errors.QueryCanceled as error:
        raise OperatorRefused(f"the query took too long: {hint}") from error


def events(connection: Connection, request: EventsRequest) -> dict[str, Any]:
    """Ledger rows, newest first (received_at, then event id), filtered."""
    query, params = events_query(request)
    with _in_time("narrow it with --provider/--since"):
        rows = connection.execute(query, params).fetchall()
    return {
        "ok": True,
        "events": [_jsonable(row) for row in rows[: request.limit]],
        "limit": request.limit,
        "more": len(rows) > request.limit,
    }


def event(connection: Connection, request: EventRequest) -> dict[str, Any]:
    """One event in full: its ledger row (or its parking, if it never reached the
    ledger), the payment and order it touched, its parkings and its replays."""
    with _in_time("name the event's --provider"):
        return _event(connection, request)


# The ledger's providers, one primary-key probe each (a loose index scan): an event
# id without its provider is then looked up by key, not by scanning the ledger.
_LEDGER_PROVIDERS = (
    "WITH RECURSIVE providers AS ("
    " SELECT min(provider) AS provider FROM webhook_events"
    " UNION ALL SELECT (SELECT min(provider) FROM webhook_events w"
    " WHERE w.provider > providers.provider)"
    " FROM providers WHERE providers.provider IS NOT NULL)"
    " SELECT provider FROM providers WHERE provider IS NOT NULL"
)
# An event's replays, by the header naming the original (migration 0005's index).
# A replay of a replay is listed under the replay it repeats.
REPLAYS = (
    "SELECT event_id FROM webhook_events WHERE provider = %(provider)s"  # noqa: S608
    f" AND headers ->> '{REPLAY_OF_HEADER}' = %(id)s ORDER BY received_at, event_id"
)


def event_lookup(provider: str | None) -> str:
    """Which providers have event `%(id)s` (in the ledger or parked), by key lookups."""
    return (
        "SELECT provider FROM webhook_events WHERE event_id = %(id)s"  # noqa: S608
        " AND provider IN ("
        + ("SELECT %(provider)s::text" if provider else _LEDGER_PROVIDERS)
        + ") UNION SELECT provider FROM parked_events WHERE event_id = %(id)s"
        " AND (%(provider)s::text IS NULL OR provider = %(provider)s)"
    )


def _event(connection: Connection, request: EventRequest) -> dict[str, Any]:
    found = connection.execute(
        event_lookup(request.provider), {"id": request.event_id, "provider": request.provider}
    ).fetchall()
    if not found:
        under = f" for provider {request.provider}" if request.provider else ""
        raise NotFound(f"no event {request.event_id}{under} in the ledger or parked events")
    provider = _one_provider(request.event_id, {row["provider"] for row in found})
    key = {"provider": provider, "id": request.event_id}
    row = connection.execute(
        f"SELECT {_EVENT_COLUMNS}, e.permanent_failures, e.headers, e.payload, e.raw_body"  # noqa: S608
        " FROM webhook_events e WHERE e.provider = %(provider)s AND e.event_id = %(id)s",
        key,
    ).fetchone()
    parked = connection.execute(
        "SELECT id, reason, last_error, parked_at, resolved_at, resolution, event_type,"
        " object_id, occurred_at, received_at, headers, payload, raw_body FROM parked_events"
        " WHERE provider = %(provider)s AND event_id = %(id)s ORDER BY parked_at, id",
        key,
    ).fetchall()
    in_ledger = row is not None
    if row is None:
        # Parked without a ledger row (a dead letter that never applied): its parking
        # carries the envelope.
        last = parked[-1]
        row = {
            "provider": provider,
            "event_id": request.event_id,
            "event_type": last["event_type"],
            "status": None,
            "object_id": last["object_id"],
            "order_id": None,
            "occurred_at": last["occurred_at"],
            "received_at": last["received_at"],
            "processed_at": None,
            "attempts": None,
            "last_error": last["last_error"],
            "permanent_failures": None,
            "headers": last["headers"],
            "payload": last["payload"],
            "raw_body": last["raw_body"],
        }
    payment = connection.execute(
        "SELECT p.provider_payment_id, p.order_id, p.status, p.amount, p.captured_amount,"  # noqa: S608
        " p.currency, p.amount_refunded, p.last_event_at, p.updated_at"
        " FROM (SELECT %(provider)s::text AS provider, %(object)s::text AS object_id,"
        " %(payload)s::jsonb AS payload) e"
        f" JOIN payments p ON {_PAYMENT_OF_EVENT}"
        " ORDER BY p.provider_payment_id = e.object_id DESC LIMIT 1",
        {
            "provider": provider,
            "object": row["object_id"],
            "payload": json.dumps(row["payload"]),
        },
    ).fetchone()
    order_id = row["order_id"] or (payment["order_id"] if payment else None)
    order = (
        connection.execute(
            "SELECT id, status, amount, currency, paid_amount, refunded_amount, created_at,"
            " updated_at FROM orders WHERE id = %s",
            (order_id,),
        ).fetchone()
        if order_id
        else None
    )
    replays = connection.execute(REPLAYS, key).fetchall()
    headers = row["headers"] or {}
    shown: dict[str, Any] = {
        **_jsonable({name: row[name] for name in EVENT_FIELDS}),
        "in_ledger": in_ledger,
        "permanent_failures": row["permanent_failures"],
        "replay_of": headers.get(REPLAY_OF_HEADER),
        "headers": headers,
        "payment": _jsonable(payment) if payment else None,
        "order": _jsonable(order) if order else None,
        "parked": [
            _jsonable(
                {
                    name: p[name]
                    for name in ("id", "reason", "last_error", "parked_at", "resolved_at")
                }
                | {"resolution": p["resolution"]}
            )
            for p in parked
        ],
        "replays": [r["event_id"] for r in replays],
    }
    if request.payload:
        shown["payload"] = row["payload"]
        shown["raw_body"] = row["raw_body"]
    return {"ok": True, "event": shown}


# --- replay ---------------------------------------------------------------------------


def _replay_rows(connection: Connection, request: ReplayRequest) -> list[dict[str, Any]]:
    with _in_time(
        "name the event's --provider"
        if request.event_id is not None
        else "narrow it with --type/--since/--until"
    ):
        return _select_replay_rows(connection, request)


# A provider's events oldest first, in a stable order: one cut short resumes from the
# position of the last one sent (resume_since, resume_after), with this same
# comparison. `NOT LIKE '%:replay:%'` is also the predicate of its index
# (webhook_events_replay_range, migration 0005).
REPLAY_RANGE = (
    "SELECT * FROM webhook_events WHERE provider = %s"
    " AND (%s::text IS NULL OR event_type = %s)"
    " AND (%s::timestamptz IS NULL OR coalesce(occurred_at, received_at) >= %s)"
    " AND (%s::timestamptz IS NULL OR coalesce(occurred_at, received_at) < %s)"
    " AND (%s::text IS NULL OR (coalesce(occurred_at, received_at), event_id) > (%s, %s))"
    " AND event_id NOT LIKE '%%:replay:%%'"
    " ORDER BY coalesce(occurred_at, received_at), event_id LIMIT %s"
)


def _select_replay_rows(connection: Connection, request: ReplayRequest) -> list[dict[str, Any]]:
    if request.event_id is not None:
        rows = connection.execute(
            "SELECT * FROM webhook_events WHERE event_id = %(id)s AND provider IN ("  # noqa: S608
            + ("SELECT %(provider)s::text" if request.provider else _LEDGER_PROVIDERS)
            + ")",
            {"id": request.event_id, "provider": request.provider},
        ).fetchall()
        if not rows:
            under = f" for provider {request.provider}" if request.provider else ""
            raise NotFound(f"no ledger row for event {request.event_id}{under}")
        _one_provider(request.event_id, {row["provider"] for row in rows})
        return rows
    rows = connection.execute(
        REPLAY_RANGE,
        (
            request.provider,
            request.type,
            request.type,
            request.since,
            request.since,
            request.until,
            request.until,
            request.after,
            request.since,
            request.after,
            MAX_REPLAY + 1,
        ),
    ).fetchall()
    if len(rows) > MAX_REPLAY:
        raise OperatorRefused(f"more than {MAX_REPLAY} events match: narrow the range")
    return rows


def _replay_envelope(row: Mapping[str, Any], nonce: str, now: datetime) -> Envelope:
    """A new event repeating a ledger or parked_events row: its exact body when kept."""
    if not row.get("event_type"):
        raise OperatorRefused(
            f"event {row['event_id']} was never an event (not an envelope): nothing to replay"
        )
    body = row["raw_body"] if row.get("raw_body") is not None else json.dumps(row["payload"])
    # An operator's replay is not a recovered event, whatever the original was.
    headers = {k: v for k, v in (row["headers"] or {}).items() if k != RECOVERED_HEADER}
    return Envelope(
        provider=row["provider"],
        event_id=_replay_id(row["event_id"], nonce),
        event_type=row["event_type"],
        object_id=row["object_id"],
        occurred_at=row["occurred_at"],
        received_at=now,
        headers={**headers, REPLAY_OF_HEADER: row["event_id"]},
        body=body,
    )


def _replay_id(event_id: str, nonce: str) -> str:
    """`<event_id>:replay:<nonce>`, or a digest of the id when that would be too long."""
    replay_id = f"{event_id}:replay:{nonce}"
    if len(replay_id) <= MAX_EVENT_ID_CHARS:
        return replay_id
    return f"sha256-{hashlib.sha256(event_id.encode()).hexdigest()}:replay:{nonce}"


def _replayable(connection: Connection, parked_row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The parked row, or for one parked before it kept its envelope, the ledger row."""
    if parked_row.get("event_type") or parked_row["provider"] == "unknown":
        return parked_row
    ledger_row = connection.execute(
        "SELECT * FROM webhook_events WHERE provider = %s AND event_id = %s",
        (parked_row["provider"], parked_row["event_id"]),
    ).fetchone()
    return ledger_row or parked_row


def replay(
    connection: Connection,
    queue: EventQueue,
    request: ReplayRequest,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    """Send the matching ledger rows again, oldest first, each as a new event.

    `{"ok": true, "nonce", "replayed": [ids sent], "more": bool}`: `more` when the
    deadline came before every match was sent. A send that fails ends the replay:
    `{"ok": false, "error", "kind", "nonce", "replayed": [ids sent before it]}`.
    Either, when matches were left unsent, adds `remaining` (how many) and, for a
    range, where to resume: `resume_since` and `resume_after`, the position of the
    last event sent (the same request with `since`/`after` set to them sends
    exactly the rest), or with none sent, the request's own position.
    """
    deadline = deadline or Deadline.never()
    rows = _replay_rows(connection, request)
    nonce = uuid.uuid4().hex[:12]
    now = datetime.now(UTC)
    # All built before any is sent: a row that cannot be replayed refuses the whole request.
    envelopes = [_replay_envelope(row, nonce, now) for row in rows]
    replayed: list[str] = []
    failure: HooklineError | None = None
    for envelope in envelopes:
        if deadline.remaining() < REPLAY_SEND_SECONDS:
            break
        try:
            queue.send(envelope)
        except HooklineError as error:
            failure = error
            break
        except Exception as error:  # noqa: BLE001 - what was sent must still be answered
            logger.exception("replay send failed unexpectedly")
            failure = HooklineError(f"unexpected {type(error).__name__}: see the reconciler's log")
            break
        replayed.append(envelope.event_id)
    count(Metric.EVENTS_REPLAYED, len(replayed))
    left = rows[len(replayed) :]
    answer: dict[str, Any] = {"ok": True, "nonce": nonce, "replayed": replayed}
    if failure is None:
        answer["more"] = bool(left)
    else:
        answer = {**error_answer(failure), "nonce": nonce, "replayed": replayed}
    if left:
        answer["remaining"] = len(left)
        if request.event_id is None:
            answer.update(_resume_at(rows[len(replayed) - 1] if replayed else None, request))
    logger.info(
        "events replayed",
        extra={
            "nonce": nonce,
            "replayed": len(replayed),
            "remaining": len(left),
            "error": answer.get("error"),
        },
    )
    return answer


def _resume_at(last_sent: Mapping[str, Any] | None, request: ReplayRequest) -> dict[str, str]:
    """Where a range cut short goes on: after the last event sent, else where it began."""
    if last_sent is not None:
        moment = last_sent["occurred_at"] or last_sent["received_at"]
        return {"resume_since": moment.isoformat(), "resume_after": last_sent["event_id"]}
    position = {"resume_since": request.since.isoformat()} if request.since else {}
    return {**position, **({"resume_after": request.after} if request.after else {})}


# --- parked events --------------------------------------------------------------------


def _parking(
    connection: Connection, ref: int | str, provider: str | None, *, lock: bool = False
) -> dict[str, Any]:
    """The parking `ref` names: a number (an int, from `#N` or a JSON number), else an
    event id's open parking, else its latest.

    A digit string is a parking's number or an event id: whichever exists, and
    refused (OperatorRefused, naming both) when each names a different parking.
    With `provider`, a digit string is that provider's event id.
    """
    suffix = " FOR UPDATE" if lock else ""
    if isinstance(ref, int):
        row = _numbered(connection, ref, suffix)
        if row is None or (provider is not None and row["provider"] != provider):
            under = f" for provider {provider}" if provider else ""
            raise NotFound(f"no parked event #{ref}{under}")
        return row
    digits = provider is None and ref.isascii() and ref.isdigit() and int(ref) <= MAX_PARKED_ID
    numbered = _numbered(connection, int(ref), suffix) if digits else None
    rows = connection.execute(
        "SELECT * FROM parked_events"  # noqa: S608 - constant SQL
        " WHERE event_id = %s AND (%s::text IS NULL OR provider = %s)"
        " ORDER BY resolved_at IS NULL DESC, parked_at DESC, id DESC" + suffix,
        (ref, provider, provider),
    ).fetchall()
    if not rows:
        if numbered is not None:
            return numbered
        under = f" for provider {provider}" if provider else ""
        number = " and no parked event has that number" if digits else ""
        raise NotFound(f"event {ref}{under} was never parked{number}")
    if numbered is not None:
        # One parking per provider: the one its event id would name.
        named = {row["provider"]: row for row in reversed(rows)}
        others = [row for row in named.values() if row["id"] != numbered["id"]]
        if others:
            raise OperatorRefused(_ambiguous(ref, numbered, others))
        return numbered
    _one_provider(ref, {row["provider"] for row in rows})
    return dict(rows[0])


def _numbered(connection: Connection, number: int, suffix: str) -> dict[str, Any] | None:
    row = connection.execute(
        "SELECT * FROM parked_events WHERE id = %s" + suffix,  # noqa: S608 - constant SQL
        (number,),
    ).fetchone()
    return dict(row) if row is not None else None


def _ambiguous(ref: str, numbered: Mapping[str, Any], others: list[dict[str, Any]]) -> str:
    """ "1 is parking #1 (stripe evt_…) and the event id of parking #3 (shopify 1): use #1,
    or --provider shopify" """
    which = ", ".join(f"#{row['id']} ({row['provider']} {row['event_id']})" for row in others)
    providers = "|".join(sorted(row["provider"] for row in others))
    parkings = "parking" if len(others) == 1 else "parkings"
    return (
        f"{ref} is parking #{numbered['id']} ({numbered['provider']} {numbered['event_id']})"
        f" and the event id of {parkings} {which}: use #{numbered['id']},"
        f" or --provider {providers}"
    )


def parked(connection: Connection, request: ParkedRequest) -> dict[str, Any]:
    """Open parked events (newest first), or one parking in full with `id`."""
    if request.id is not None:
        row = _parking(connection, request.id, request.provider)
        ledger_row = connection.execute(
            "SELECT status FROM webhook_events WHERE provider = %s AND event_id = %s",
            (row["provider"], row["event_id"]),
        ).fetchone()
        shown = _jsonable(row) | {"ledger_status": ledger_row["status"] if ledger_row else None}
        return {"ok": True, "parked": shown}
    rows = connection.execute(
        "SELECT p.id, p.provider, p.event_id, coalesce(p.event_type, e.event_type) AS event_type,"
        " p.reason, p.last_error, p.parked_at FROM parked_events p"
        " LEFT JOIN webhook_events e ON e.provider = p.provider AND e.event_id = p.event_id"
        " WHERE p.resolved_at IS NULL ORDER BY p.parked_at DESC, p.id DESC LIMIT %s",
        (request.limit + 1,),
    ).fetchall()
    listed = [
        _jsonable(row) | {"last_error": _summary(row["last_error"])}
        for row in rows[: request.limit]
    ]
    return {"ok": True, "parked": listed, "limit": request.limit, "more": len(rows) > request.limit}


def resolve(connection: Connection, queue: EventQueue, request: ResolveRequest) -> dict[str, Any]:
    """Close a parked event with a note; with `replay`, send it through again.

    The answer names the parking (`resolved`: its number, `provider`, `event_id`),
    when it was closed and the ledger row's status now (None without a row).

    Atomic: the parking is closed, and its ledger row marked `resolved`, only in
    the transaction that saw the replay accepted by SQS. If the replay cannot be
    built or sent, nothing changes and the error says why. The replay is rebuilt
    from parked_events alone (its ledger row may be gone, or never have existed).
    """
    with connection.transaction():
        found = _parking(connection, request.id, request.provider)
        # The ledger row's lock before the parking's: the consumer's park updates the
        # ledger row, then inserts the parking, and opposite orders could deadlock.
        connection.execute(
            "SELECT 1 FROM webhook_events WHERE provider = %s AND event_id = %s FOR UPDATE",
            (found["provider"], found["event_id"]),
        )
        row = _parking(connection, request.id, request.provider, lock=True)
        if (row["provider"], row["event_id"]) != (found["provider"], found["event_id"]):
            # Only if the parkings changed between the two reads (a new one appeared).
            raise OperatorRefused(f"parked event {request.id} changed meanwhile: try again")
        parked_id = row["id"]
        if row["resolved_at"] is not None:
            raise OperatorRefused(
                f"parked event #{parked_id} ({row['provider']} {row['event_id']}) was already"
                f" resolved at {row['resolved_at'].isoformat()}, by note {row['resolution']!r}"
            )
        answer: dict[str, Any] = {
            "ok": True,
            "resolved": parked_id,
            "provider": row["provider"],
            "event_id": row["event_id"],
        }
        if request.replay:
            envelope = _replay_envelope(
                _replayable(connection, row), RESOLVE_NONCE.format(id=parked_id), datetime.now(UTC)
            )
            queue.send(envelope)  # raises (and rolls back) unless SQS has it
            count(Metric.EVENTS_REPLAYED)
            answer["replay"] = {"ok": True, "replayed": [envelope.event_id]}
        closed = connection.execute(
            "UPDATE parked_events SET resolved_at = now(), resolution = %s WHERE id = %s"
            " RETURNING resolved_at",
            (request.resolution, parked_id),
        ).fetchone()
        assert closed is not None  # locked above
        # The ledger stops saying it needs a human; any other status is left as it is.
        connection.execute(
            "UPDATE webhook_events SET status = %s WHERE provider = %s AND event_id = %s"
            " AND status = %s",
            (LedgerStatus.RESOLVED.value, row["provider"], row["event_id"], LedgerStatus.PARKED),
        )
        ledger_row = connection.execute(
            "SELECT status FROM webhook_events WHERE provider = %s AND event_id = %s",
            (row["provider"], row["event_id"]),
        ).fetchone()
        answer["resolved_at"] = closed["resolved_at"].isoformat()
        answer["ledger_status"] = ledger_row["status"] if ledger_row else None
    count(Metric.PARKED_RESOLVED)
    logger.info("parked event resolved", extra={"parked_id": parked_id, **answer})
    return answer
