-- Issue 13: a parked event a human has resolved says so in the ledger.
-- `parked` keeps meaning "needs a human" (what `hookline status` and the
-- alarms count); `resolved` is as final as `parked` was: a redelivery or a
-- dead copy of it is a no-op. What was done and when stays in parked_events.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_status_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_status_check CHECK (status IN (
    'received', 'applied', 'stale', 'ignored', 'orphaned', 'parked', 'resolved', 'failed'));
