"""A dead letter's verdict, from its event's ledger row, and parking it with all it carries."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from hookline import ledger
from hookline.database import Connection
from hookline.ledger import FINAL, PERMANENT_FAILURE_REASON
from hookline.payloads import store_body
from hookline.reconcile.redrive import (
    MALFORMED_REASON,
    PARK_REASON,
    DeadLetter,
    Judgement,
    Verdict,
)
from hookline.storable import storable_text


def _identity(letter: DeadLetter) -> tuple[str, str]:
    if letter.envelope is None:
        return "unknown", f"sqs:{letter.message_id}"
    return letter.envelope.provider, letter.envelope.event_id


def judge(
    connection: Connection, letter: DeadLetter, *, max_redrives: int, max_permanent_failures: int
) -> Judgement:
    """Park only on the event's own evidence; drop a dead copy; re-send everything else.

    The evidence is the number of the event's own failures the ledger counted,
    never SQS's receive count (which also counts skips behind a failing group
    mate, hand-backs and attempts during outages) nor the kind of the last failure.
    """
    if letter.envelope is None:
        return Judgement(Verdict.PARK, MALFORMED_REASON)
    row = ledger.lookup(connection, *_identity(letter))
    if row is None:
        return Judgement(Verdict.REDRIVE)
    if row.status in FINAL:
        return Judgement(Verdict.DROP)
    if row.permanent_failures >= max_permanent_failures:
        # As many of its own failures as the consumer parks on.
        return Judgement(Verdict.PARK, PERMANENT_FAILURE_REASON)
    if letter.redrives >= max_redrives and row.permanent_failures > letter.redrives:
        # It failed on its own on every trip through the queue.
        return Judgement(Verdict.PARK, PARK_REASON)
    return Judgement(Verdict.REDRIVE)


def park_dead_letter(connection: Connection, letter: DeadLetter, reason: str) -> bool:
    """A parked_events row (and the ledger row marked parked when there is one).

    Returns False when the ledger row is already handled: then the letter is a
    dead copy and nothing is parked.
    """
    provider, event_id = _identity(letter)
    envelope = letter.envelope
    with connection.transaction():
        row = ledger.lookup(connection, provider, event_id)
        if row is not None:
            return ledger.park(connection, provider, event_id, reason, row.last_error)
        # Never reached the ledger: keep what SQS held, enough to replay it.
        if envelope is None:
            payload, raw_body = Jsonb({"message": storable_text(letter.body)}), None
        else:
            stored = store_body(envelope.body)
            payload, raw_body = stored.payload, stored.raw_body
        connection.execute(
            "INSERT INTO parked_events (provider, event_id, reason, payload, event_type,"
            " object_id, occurred_at, received_at, headers, raw_body)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (provider, event_id) WHERE resolved_at IS NULL DO NOTHING",
            (
                provider,
                event_id,
                reason,
                payload,
                envelope.event_type if envelope else None,
                envelope.object_id if envelope else None,
                envelope.occurred_at if envelope else None,
                envelope.received_at if envelope else None,
                Jsonb(envelope.headers) if envelope else None,
                raw_body,
            ),
        )
    return True
