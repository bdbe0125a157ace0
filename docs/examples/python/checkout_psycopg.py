"""Checkout with psycopg: the shop's order and hookline's, in one transaction.

hookline learns what to expect from one row in its `orders` table: the order id,
the amount in minor units and the currency. The checkout writes it in the same
transaction as the shop's own order, so there is never one without the other,
then gives the order id to the payment provider (here Stripe's
`metadata.order_id`), where hookline reads it back from every event.

    SHOP_DATABASE_URL=postgresql://shop@db/shop python checkout_psycopg.py a@example.com
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Item:
    sku: str
    quantity: int
    unit_price_cents: int


def place_order(
    connection: psycopg.Connection[Any],
    customer_email: str,
    items: list[Item],
    currency: str,
    *,
    hookline_schema: str = "hookline",
) -> uuid.UUID:
    """Save the order for the shop and for hookline, atomically; return its id."""
    order_id = uuid.uuid4()
    total = sum(item.quantity * item.unit_price_cents for item in items)
    with connection.transaction():
        connection.execute(
            "INSERT INTO public.orders (id, customer_email, total_cents, currency)"
            " VALUES (%s, %s, %s, %s)",
            (order_id, customer_email, total, currency),
        )
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO public.order_items (order_id, sku, quantity, unit_price_cents)"
                " VALUES (%s, %s, %s, %s)",
                [(order_id, i.sku, i.quantity, i.unit_price_cents) for i in items],
            )
        # hookline's order: id as text, amount in minor units, currency (any case).
        connection.execute(
            sql.SQL("INSERT INTO {}.orders (id, amount, currency) VALUES (%s, %s, %s)").format(
                sql.Identifier(hookline_schema)
            ),
            (str(order_id), total, currency),
        )
    return order_id


def main() -> None:
    with psycopg.connect(os.environ["SHOP_DATABASE_URL"], autocommit=True) as connection:
        order_id = place_order(
            connection,
            sys.argv[1],
            [Item("tee-black-m", 2, 1500)],
            "usd",
            hookline_schema=os.environ.get("HOOKLINE_SCHEMA", "hookline"),
        )
    print(order_id)
    # Then ask the provider for the payment, naming the order where hookline reads it:
    #   stripe.PaymentIntent.create(amount=3000, currency="usd",
    #                               metadata={"order_id": str(order_id)})


if __name__ == "__main__":
    main()
