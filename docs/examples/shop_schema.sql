-- A typical shop's own tables, in schema public: the example checkout writes them,
-- the example callback (python/shop_callbacks.py) keeps their payment columns in
-- step with hookline's orders. hookline itself never creates, reads or changes
-- anything here; its own tables are in its schema (`hookline` by default).

CREATE TABLE public.orders (
    -- The shop's order id, made by the checkout; hookline's order id is its text form.
    id             uuid        PRIMARY KEY,
    customer_email text        NOT NULL,
    total_cents    bigint      NOT NULL CHECK (total_cents >= 0),
    currency       text        NOT NULL,
    -- Written by the callback, inside hookline's transaction.
    payment_status text        NOT NULL DEFAULT 'unpaid' CHECK (payment_status IN (
                        'unpaid', 'paid', 'partially_refunded', 'refunded', 'canceled',
                        'failed', 'needs_review')),
    paid_cents     bigint      NOT NULL DEFAULT 0,
    refunded_cents bigint      NOT NULL DEFAULT 0,
    paid_at        timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.order_items (
    order_id         uuid   NOT NULL REFERENCES public.orders (id) ON DELETE CASCADE,
    sku              text   NOT NULL,
    quantity         int    NOT NULL CHECK (quantity > 0),
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, sku)
);
