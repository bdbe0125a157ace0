"""Checkout with SQLAlchemy: hookline's order added in the shop's own ORM session.

Both tables are mapped; the session commits the shop's order and hookline's
together. hookline's schema is `hookline` in the mapping; a stack that uses
another one (DATABASE_SCHEMA=hookline_prod) is reached with
`schema_translate_map`, as `engine_for` shows.

    SHOP_DATABASE_URL=postgresql+psycopg://shop@db/shop python checkout_sqlalchemy.py a@example.com
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Engine, FetchedValue, ForeignKey, Text, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class ShopOrder(Base):
    """The shop's own order (docs/examples/shop_schema.sql)."""

    __tablename__ = "orders"
    __table_args__ = {"schema": "public"}  # noqa: RUF012 - SQLAlchemy's declarative form

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    customer_email: Mapped[str] = mapped_column(Text)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    # Kept in step by the shop's order callback, never by the checkout.
    payment_status: Mapped[str] = mapped_column(Text, server_default=FetchedValue())
    paid_at: Mapped[datetime | None] = mapped_column(server_default=FetchedValue())
    items: Mapped[list[OrderItem]] = relationship()


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = {"schema": "public"}  # noqa: RUF012 - SQLAlchemy's declarative form

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("public.orders.id"), primary_key=True)
    sku: Mapped[str] = mapped_column(Text, primary_key=True)
    quantity: Mapped[int]
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)


class HooklineOrder(Base):
    """hookline's order: the shop writes id, amount and currency; hookline the rest."""

    __tablename__ = "orders"
    __table_args__ = {"schema": "hookline"}  # noqa: RUF012 - SQLAlchemy's declarative form

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=FetchedValue())
    paid_amount: Mapped[int] = mapped_column(BigInteger, server_default=FetchedValue())
    refunded_amount: Mapped[int] = mapped_column(BigInteger, server_default=FetchedValue())


def engine_for(url: str, hookline_schema: str = "hookline") -> Engine:
    """An engine whose `hookline` schema in the mapping is the stack's DATABASE_SCHEMA."""
    return create_engine(url).execution_options(schema_translate_map={"hookline": hookline_schema})


def place_order(
    session: Session, customer_email: str, items: list[tuple[str, int, int]], currency: str
) -> uuid.UUID:
    """Add the shop's order and hookline's to `session` and commit them together."""
    total = sum(quantity * price for _, quantity, price in items)
    with session.begin():
        order = ShopOrder(customer_email=customer_email, total_cents=total, currency=currency)
        order.items = [OrderItem(sku=s, quantity=q, unit_price_cents=p) for s, q, p in items]
        session.add(order)
        session.flush()  # assigns order.id
        session.add(HooklineOrder(id=str(order.id), amount=total, currency=currency))
    return order.id


def main() -> None:
    engine = engine_for(
        os.environ["SHOP_DATABASE_URL"], os.environ.get("HOOKLINE_SCHEMA", "hookline")
    )
    with Session(engine) as session:
        order_id = place_order(session, sys.argv[1], [("tee-black-m", 2, 1500)], "usd")
    print(order_id)
    # Then: stripe.PaymentIntent.create(amount=3000, currency="usd",
    #                                   metadata={"order_id": str(order_id)})


if __name__ == "__main__":
    main()
