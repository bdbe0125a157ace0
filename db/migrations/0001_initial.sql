-- hookline's tables. Column names in DESIGN.md are public contracts.
-- Every status column has a check constraint: a wrong value fails loudly.

CREATE TABLE webhook_events (
    provider     text        NOT NULL CHECK (provider <> ''),
    event_id     text        NOT NULL CHECK (event_id <> ''),
    event_type   text        NOT NULL CHECK (event_type <> ''),
    object_id    text,
    occurred_at  timestamptz,
    received_at  timestamptz NOT NULL,
    processed_at timestamptz,
    -- received: claimed inside an apply transaction (never seen after commit);
    -- failed: the last attempt raised, SQS will deliver it again.
    status       text        NOT NULL CHECK (status IN (
                     'received', 'applied', 'stale', 'ignored', 'orphaned', 'parked', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error   text,
    -- The order an orphaned event waits for.
    order_id     text,
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    payload      jsonb       NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- Settling orphans looks them up by order; retention scans by age.
CREATE INDEX webhook_events_orphans ON webhook_events (order_id, occurred_at)
    WHERE status = 'orphaned';
CREATE INDEX webhook_events_received_at ON webhook_events (received_at);
CREATE INDEX webhook_events_type_occurred ON webhook_events (provider, event_type, occurred_at);

CREATE TABLE orders (
    id              text        PRIMARY KEY CHECK (id <> ''),
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN (
                        'pending', 'paid', 'partially_refunded', 'refunded', 'canceled',
                        'payment_failed', 'amount_mismatch')),
    amount          bigint      NOT NULL CHECK (amount >= 0),
    currency        text        NOT NULL CHECK (currency ~ '^[A-Za-z]{3}$'),
    paid_amount     bigint      NOT NULL DEFAULT 0 CHECK (paid_amount >= 0),
    refunded_amount bigint      NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payments (
    provider            text        NOT NULL CHECK (provider <> ''),
    provider_payment_id text        NOT NULL CHECK (provider_payment_id <> ''),
    -- No foreign key: a payment may arrive before the shop saves its order.
    order_id            text,
    status              text        NOT NULL CHECK (status IN (
                            'pending', 'processing', 'succeeded', 'failed', 'canceled',
                            'refunded', 'partially_refunded')),
    amount              bigint      NOT NULL DEFAULT 0 CHECK (amount >= 0),
    currency            text        CHECK (currency ~ '^[A-Za-z]{3}$'),
    amount_refunded     bigint      NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    last_event_at       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, provider_payment_id)
);

CREATE INDEX payments_order_id ON payments (order_id) WHERE order_id IS NOT NULL;

-- Individual refunds, for providers that report them one by one (Square, Shopify).
CREATE TABLE refunds (
    provider            text        NOT NULL CHECK (provider <> ''),
    provider_refund_id  text        NOT NULL CHECK (provider_refund_id <> ''),
    provider_payment_id text        NOT NULL CHECK (provider_payment_id <> ''),
    status              text        NOT NULL CHECK (status IN (
                            'pending', 'succeeded', 'failed', 'canceled')),
    amount              bigint      NOT NULL CHECK (amount >= 0),
    currency            text        CHECK (currency ~ '^[A-Za-z]{3}$'),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, provider_refund_id)
);

CREATE INDEX refunds_payment ON refunds (provider, provider_payment_id);

CREATE TABLE parked_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider    text        NOT NULL,
    event_id    text        NOT NULL,
    reason      text        NOT NULL CHECK (reason <> ''),
    last_error  text,
    payload     jsonb       NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolution  text
);

-- At most one open parking per event.
CREATE UNIQUE INDEX parked_events_open ON parked_events (provider, event_id)
    WHERE resolved_at IS NULL;

CREATE TABLE reconciliation_runs (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    status            text        NOT NULL DEFAULT 'running' CHECK (status IN (
                          'running', 'succeeded', 'failed')),
    redriven          integer     NOT NULL DEFAULT 0,
    parked            integer     NOT NULL DEFAULT 0,
    orphans_settled   integer     NOT NULL DEFAULT 0,
    recovered         integer     NOT NULL DEFAULT 0,
    retention_deleted integer     NOT NULL DEFAULT 0,
    error             text
);
