-- Issue 13: indexes for inspecting a large ledger (`hookline events`, `event`),
-- so each filter is an index lookup rather than a scan of webhook_events.
--
-- Locks: a migration runs in one transaction, where CREATE INDEX CONCURRENTLY
-- cannot run. So these are plain CREATE INDEX: each takes a SHARE lock on
-- webhook_events, held until this migration commits. Reads go on; writes
-- (the consumer recording events, retention) wait for the builds, about a
-- second per index per million rows. Webhooks are not lost meanwhile: the
-- receiver only queues them, and a consumer write that times out waiting is a
-- transient failure, retried from SQS. lock_timeout keeps this migration from
-- queueing behind a long transaction (every writer would then queue behind it):
-- it fails instead, changes nothing, and the deploy rolls back; deploy again.
--
-- On a ledger too large to block writes that long, create the same indexes
-- by hand first, with CREATE INDEX CONCURRENTLY and these names (outside a
-- transaction, in hookline's schema); IF NOT EXISTS then skips them here.
-- Check that none is INVALID (a CONCURRENTLY build that failed): drop it and
-- build it again.
SET LOCAL lock_timeout = '10s';

-- `events --status`, `--type` (without --provider), newest first.
CREATE INDEX IF NOT EXISTS webhook_events_status_received
    ON webhook_events (status, received_at);
CREATE INDEX IF NOT EXISTS webhook_events_type_received
    ON webhook_events (event_type, received_at);

-- `events --order`: the rows naming the order, and the rows of its payments, by
-- object id or (Stripe's charge and checkout events) the payment intent named.
CREATE INDEX IF NOT EXISTS webhook_events_order
    ON webhook_events (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS webhook_events_object
    ON webhook_events (provider, object_id);
CREATE INDEX IF NOT EXISTS webhook_events_payment_intent
    ON webhook_events (provider, (payload #>> '{data,object,payment_intent}'))
    WHERE (payload #>> '{data,object,payment_intent}') IS NOT NULL;

-- `replay --provider P [--since T]`: a provider's events in time order, the order a
-- range is replayed in and resumed from (time, then event id). Partial on the
-- range's own predicate (replays are never replayed by a range): only that query
-- can use it, so it never stands in for the lookups above.
CREATE INDEX IF NOT EXISTS webhook_events_replay_range
    ON webhook_events (provider, (coalesce(occurred_at, received_at)), event_id)
    WHERE event_id NOT LIKE '%:replay:%';

-- `event`: an event's replays, by the header naming the original.
CREATE INDEX IF NOT EXISTS webhook_events_replay_of
    ON webhook_events (provider, (headers ->> 'hookline-replay-of'))
    WHERE (headers ->> 'hookline-replay-of') IS NOT NULL;

-- `parked show`/`resolve` by event id (any provider, resolved parkings too).
-- parked_events is small and rarely written: its SHARE lock is brief.
CREATE INDEX IF NOT EXISTS parked_events_event ON parked_events (event_id);
