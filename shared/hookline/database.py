"""One PostgreSQL connection per Lambda container.

Opened on first use, reused across invocations, checked after idling (a Lambda
container can be frozen for minutes while the server drops the socket) and
re-opened after a failure. The event source mapping's maximum concurrency caps
the number of containers, hence of connections.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import DictRow, dict_row

from hookline.errors import ConfigurationError, DatabaseUnavailable, SecretsUnavailable
from hookline.metric_names import Metric
from hookline.observability import count, logger
from hookline.schema import DEFAULT_SCHEMA, schema_name

Connection = psycopg.Connection[DictRow]


# The schema hookline's session was put in, readable from SQL
# (`current_setting('hookline.schema', true)`): the NOTIFY channel and the check
# that no handler or callback moved the session elsewhere read it.
SCHEMA_SETTING = "hookline.schema"


def enter_schema(
    connection: Connection, schema: str, statement_timeout_ms: int | None = None
) -> None:
    """Put a new session in hookline's schema alone (and bound its statements).

    Only the schema: pg_catalog is always searched first, and nothing outside the
    schema resolves unqualified, so hookline cannot read or write a shop's table
    by accident, and a shop's callback names its own tables (`public.orders`).
    Set after connecting, not as libpq startup `options`, which RDS Proxy refuses.
    """
    name = schema_name(schema)
    connection.execute(
        "SELECT set_config('search_path', %s, false), set_config(%s, %s, false),"
        " set_config('statement_timeout', coalesce(%s, current_setting('statement_timeout')),"
        " false)",
        (
            name,
            SCHEMA_SETTING,
            name,
            None if statement_timeout_ms is None else str(statement_timeout_ms),
        ),
    )


# Everything a session has set for itself, and who it is: what hookline set up at
# connect time, which no team's code may leave changed.
_FINGERPRINT = (
    "SELECT current_user AS role, coalesce(string_agg(name || '=' || setting, ','"
    " ORDER BY name), '') AS settings FROM pg_settings WHERE source = 'session'"
)


_Query = str | bytes | sql.SQL | sql.Composed


class Pending:
    """A statement queued on a `StatementQueue`: its rows, once the queue has been sent."""

    def __init__(self, queue: StatementQueue) -> None:
        self._queue = queue
        self._rows: list[DictRow] | None = None

    def rows(self) -> list[DictRow]:
        """The statement's rows (none for a write without RETURNING); sends the queue
        first if it has not been sent yet."""
        if self._rows is None:
            self._queue.flush()
        if self._rows is None:
            # Only after a flush that raised: the error that stopped it is the answer.
            raise psycopg.InterfaceError("the statement's pipeline failed before it answered")
        return self._rows

    def one(self) -> DictRow | None:
        rows = self.rows()
        return rows[0] if rows else None


@dataclass
class _Queued:
    query: _Query
    params: Sequence[Any] | Mapping[str, Any] | None
    pending: Pending
    then: Callable[[list[DictRow]], None] | None


@dataclass
class StatementQueue:
    """Statements that travel to PostgreSQL together: one round trip for all of them.

    On AWS each round trip costs about half a millisecond in a VPC, far more than
    a simple statement takes to run, so hookline queues what it can and sends it
    in one psycopg pipeline when an answer is needed (`Pending.rows`) or the
    transaction ends. The statements still run one after the other, in the order
    they were queued, each with its own snapshot: a statement queued after a
    `FOR UPDATE` runs under that lock. If one fails, those after it do not run,
    and `flush` raises its error.
    """

    connection: Connection
    _queued: list[_Queued | Callable[[], object]] = field(default_factory=list)

    def add(
        self,
        query: _Query,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        then: Callable[[list[DictRow]], None] | None = None,
    ) -> Pending:
        """Queue a statement; `then` gets its rows as soon as they arrive, in queue order."""
        pending = Pending(self)
        self._queued.append(_Queued(query, params, pending, then))
        return pending

    def call(self, send: Callable[[], object]) -> None:
        """Queue a driver call that sends a command (a transaction's BEGIN or COMMIT)."""
        self._queued.append(send)

    def flush(self) -> None:
        """Send everything queued, in one pipeline, and read every answer."""
        queued, self._queued = self._queued, []
        if not queued:
            return
        cursors = []
        with self.connection.pipeline():
            for item in queued:
                if isinstance(item, _Queued):
                    cursors.append((item, self.connection.execute(item.query, item.params)))
                else:
                    item()
        for item, cursor in cursors:
            rows = cursor.fetchall() if cursor.description is not None else []
            item.pending._rows = rows
            if item.then is not None:
                item.then(rows)


def _fingerprint(connection: Connection) -> dict[str, Any] | None:
    return connection.execute(_FINGERPRINT).fetchone()


def _schema_problem(connection: Connection, schema: str) -> str | None:
    """Why this session cannot use hookline's schema, if it cannot: set_config
    checks neither that the schema exists nor that the role may use it."""
    row = connection.execute(
        "SELECT n.oid IS NOT NULL AS found,"
        " n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'USAGE') AS usable,"
        " current_user AS role"
        " FROM (SELECT %s::name AS name) wanted"
        " LEFT JOIN pg_namespace n ON n.nspname = wanted.name",
        (schema,),
    ).fetchone()
    if row is None or not row["found"]:
        return f"schema {schema} does not exist: deploy (its migrations create it) first"
    if not row["usable"]:
        return (
            f"role {row['role']} may not use schema {schema}:"
            f" GRANT USAGE ON SCHEMA {schema} TO {row['role']} (and its tables)"
        )
    return None


def well_formed(conninfo: str) -> str:
    """`conninfo` if libpq can parse it, else ConfigurationError that does not quote it:
    libpq's own message quotes the text around the fault, a password included."""
    try:
        conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        raise ConfigurationError(
            "the database connection string is malformed (not shown: it may hold a password)"
        ) from None
    return conninfo


def connect(
    url: str,
    schema: str = DEFAULT_SCHEMA,
    *,
    statement_timeout_ms: int | None = None,
    **kwargs: Any,
) -> Connection:
    """A connection in `schema` (autocommit, dict rows), for commands and tools.

    `statement_timeout_ms` None keeps the server's (or the role's) own; 0 is none."""
    connection = psycopg.connect(well_formed(url), autocommit=True, row_factory=dict_row, **kwargs)
    try:
        enter_schema(connection, schema, statement_timeout_ms)
    except BaseException:
        connection.close()
        raise
    return connection


# SQLSTATE classes that describe the server, the session or the deployment, never
# the event's data: connection (08), transaction rollback: serialization and
# deadlock (40), insufficient resources: too many connections, disk (53),
# operator intervention: statement timeout, shutdown (57), system (58), internal
# (XX), read-only after a failover (25), and schema or privileges (42: a
# migration or a grant fixes it, and the event then applies as it is).
_TRANSIENT_CLASSES = frozenset({"08", "25", "40", "42", "53", "57", "58", "XX"})
# Lock not available, object in use.
_TRANSIENT_STATES = frozenset({"55P03", "55006"})
QUERY_CANCELED = "57014"


def is_transient(error: psycopg.Error) -> bool:
    """Whether a driver error is the database's state (try later), not the event's data.

    Anything else (a value out of range, a check violation, an index row too large,
    text PostgreSQL cannot hold) fails the same way every time: the event's own failure.
    """
    if isinstance(error, psycopg.InterfaceError):
        return True
    state = error.sqlstate
    if state is None:
        # Raised by the driver itself: a lost connection, or data it refused to send.
        return isinstance(error, psycopg.OperationalError)
    return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES


def describe(error: BaseException) -> str:
    """A one-line, secret-free description of a driver error (psycopg never echoes passwords)."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


class Database:
    def __init__(
        self,
        conninfo: Callable[[], str],
        *,
        application_name: str = "hookline",
        schema: str = DEFAULT_SCHEMA,
        verify_sessions: bool = False,
        connect_timeout_seconds: int = 3,
        statement_timeout_ms: int = 10_000,
        idle_check_seconds: float = 30.0,
        retry_after_failure_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conninfo = conninfo
        self._application_name = application_name
        self._schema = schema_name(schema)
        self._statement_timeout_ms = statement_timeout_ms
        self._verify_sessions = verify_sessions
        self._fingerprint: dict[str, Any] | None = None
        self._connect_timeout = connect_timeout_seconds
        self._idle_check = idle_check_seconds
        self._retry_after_failure = retry_after_failure_seconds
        self._clock = clock
        self._connection: Connection | None = None
        self._last_used = 0.0
        self._failed_at: float | None = None

    def connection(self) -> Connection:
        """A usable connection (autocommit; use `with conn.transaction()`).

        After a failed connect it raises DatabaseUnavailable without trying
        again until `clear_failure()` or `retry_after_failure_seconds`, so a
        batch fails fast instead of waiting out `connect_timeout` per record.
        """
        now = self._clock()
        connection = self._connection
        if connection is not None and (connection.closed or connection.broken):
            self.discard()
            connection = None
        if connection is not None and now - self._last_used > self._idle_check:
            try:
                connection.execute("SELECT 1")
            except psycopg.Error:
                self.discard()
                connection = None
        if connection is None:
            connection = self._open(now)
        self._last_used = now
        return connection

    def _open(self, now: float) -> Connection:
        if self._failed_at is not None and now - self._failed_at < self._retry_after_failure:
            raise DatabaseUnavailable("PostgreSQL was unreachable moments ago")
        try:
            connection = psycopg.connect(
                well_formed(self._conninfo()),
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=self._connect_timeout,
                application_name=self._application_name,
            )
        except psycopg.Error as error:
            self._failed_at = now
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {describe(error)}") from error
        try:
            enter_schema(connection, self._schema, self._statement_timeout_ms)
            problem = _schema_problem(connection, self._schema)
            self._fingerprint = _fingerprint(connection) if self._verify_sessions else None
        except psycopg.Error as error:
            connection.close()
            raise DatabaseUnavailable(f"cannot set up the session: {describe(error)}") from error
        if problem is not None:
            connection.close()
            # Transient: a deploy (its migrations) or a GRANT fixes it, and the events wait.
            raise DatabaseUnavailable(problem)
        self._failed_at = None
        self._connection = connection
        return connection

    def session_check(self, queue: StatementQueue) -> Pending | None:
        """Queue the session's fingerprint behind a transaction's COMMIT, for
        `verify_session` (None when sessions are not verified): a setting outlives
        the transaction, so read there it costs no round trip of its own."""
        return queue.add(_FINGERPRINT) if self._verify_sessions else None

    def verify_session(self, check: Pending | None = None) -> None:
        """After a transaction that ran a team's code (handlers, callbacks) committed:
        drop the connection if that code left a session setting behind (`SET ROLE`,
        `SET statement_timeout`, `SET search_path`, ...), which would otherwise carry
        over to every later event on this connection. Only with `verify_sessions`
        (a team's modules are loaded): hookline's own code sets nothing. `check`:
        the fingerprint `session_check` queued, else it is read now."""
        connection = self._connection
        if not self._verify_sessions or connection is None or connection.closed:
            return
        try:
            found = check.one() if check is not None else _fingerprint(connection)
            same = found == self._fingerprint
        except psycopg.Error:
            same = False
        if not same:
            count(Metric.SESSION_DISCARDED)
            logger.warning(
                "a handler or callback changed the session's settings (a SET outlives its"
                " transaction): the connection is dropped, the next event opens a fresh one"
            )
            self.discard()

    def clear_failure(self) -> None:
        """Forget a failed connect, so the next use tries again (at each new batch)."""
        self._failed_at = None

    def cancel(self) -> None:
        """Cancel the statement running on the connection now (from another thread)."""
        connection = self._connection
        if connection is not None and not connection.closed:
            with contextlib.suppress(psycopg.Error):
                connection.cancel_safe(timeout=2.0)

    def discard(self) -> None:
        """Drop the connection (after an error); the next use opens a new one."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                connection.close()


def conninfo_from_secret(secret: Any, defaults: Mapping[str, str | None] | None = None) -> str:
    """A libpq connection string from an RDS-style secret (username, password, host, ...).

    An RDS-managed master-user secret holds only username and password: `defaults`
    (DATABASE_HOST, DATABASE_PORT, DATABASE_NAME) supply what the secret lacks; what
    the secret holds wins, so a secret that moves the database moves hookline too.
    """
    if not isinstance(secret, dict):
        raise SecretsUnavailable("the database secret is not a JSON object")
    given = {key: value for key, value in (defaults or {}).items() if value}
    held = {key: value for key, value in secret.items() if value}
    if "database" in held:  # some tools name it so
        held.setdefault("dbname", held.pop("database"))
    merged = {**given, **held}
    missing = [key for key in ("host", "username", "password") if not merged.get(key)]
    if missing:
        hint = " (set DatabaseHost for an RDS-managed secret)" if "host" in missing else ""
        raise ConfigurationError(f"the database secret lacks {', '.join(missing)}{hint}")
    return make_conninfo(
        host=str(merged["host"]),
        port=str(merged.get("port", 5432)),
        dbname=str(merged.get("dbname") or "postgres"),
        user=str(merged["username"]),
        password=str(merged["password"]),
        sslmode=str(merged.get("sslmode", "require")),
    )
