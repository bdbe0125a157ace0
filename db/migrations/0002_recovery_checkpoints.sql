-- Where each provider's event listing got to, per reconciler run: the next
-- run lists from the last successful checkpoint (minus an overlap).
ALTER TABLE reconciliation_runs
    ADD COLUMN checkpoints jsonb NOT NULL DEFAULT '{}'::jsonb;
