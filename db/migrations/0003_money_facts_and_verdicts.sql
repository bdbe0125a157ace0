-- Issue 10: what a payment captured, what an event's own failures say, and
-- enough of a parked event to replay it.

-- The amount actually captured, when an event reported it (a partial capture
-- takes less than `amount`, the amount requested). An order counts this.
ALTER TABLE payments
    ADD COLUMN captured_amount bigint CHECK (captured_amount >= 0);

-- An event is parked only on its own evidence: failures that were the event's
-- fault (`permanent_failures`), not a dependency's. `failure_kind` is the last
-- failure's. `raw_body` keeps the body exactly when `payload` could not (a
-- `\u0000` jsonb refuses, a number it cannot hold, a body that is not JSON).
ALTER TABLE webhook_events
    ADD COLUMN permanent_failures integer NOT NULL DEFAULT 0 CHECK (permanent_failures >= 0),
    ADD COLUMN failure_kind text CHECK (failure_kind IN ('transient', 'permanent')),
    ADD COLUMN raw_body text;

-- A parked event carries its whole envelope, so it can be replayed from here
-- alone (its ledger row may be gone, or never have existed).
ALTER TABLE parked_events
    ADD COLUMN event_type text,
    ADD COLUMN object_id text,
    ADD COLUMN occurred_at timestamptz,
    ADD COLUMN received_at timestamptz,
    ADD COLUMN headers jsonb,
    ADD COLUMN raw_body text;

-- Orphans past the deadline are found by age, whatever their order.
CREATE INDEX webhook_events_orphans_by_age ON webhook_events
    ((coalesce(occurred_at, received_at))) WHERE status = 'orphaned';
