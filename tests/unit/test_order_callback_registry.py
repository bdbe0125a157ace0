"""Registering order callbacks, and the NOTIFY payload's size guarantee."""

from __future__ import annotations

import json

import pytest
from hookline.database import Connection
from hookline.handlers import Cause, HandlerRegistry, OrderChanged, OrderState, OrderStatus
from hookline.outbox import MAX_NOTIFY_BYTES, notify_payload


def test_callbacks_are_kept_in_registration_order() -> None:
    registry = HandlerRegistry()

    def first(connection: Connection, change: OrderChanged) -> None: ...

    def second(connection: Connection, change: OrderChanged) -> None: ...

    assert registry.on_order_change(second) is second
    assert registry.on_order_change(first) is first
    assert registry.order_callbacks == (second, first)


def test_registering_a_callback_twice_is_an_error() -> None:
    registry = HandlerRegistry()

    @registry.on_order_change
    def mark_paid(connection: Connection, change: OrderChanged) -> None: ...

    with pytest.raises(ValueError, match="mark_paid is already an order callback"):
        registry.on_order_change(mark_paid)
    assert registry.order_callbacks == (mark_paid,)


def test_an_async_callback_is_refused() -> None:
    registry = HandlerRegistry()

    async def notify_shop(connection: Connection, change: OrderChanged) -> None: ...

    with pytest.raises(TypeError, match="use a plain def"):
        registry.on_order_change(notify_shop)  # type: ignore[arg-type]
    assert registry.order_callbacks == ()


def test_a_callback_must_be_callable() -> None:
    with pytest.raises(TypeError, match="not callable"):
        HandlerRegistry().on_order_change("shop.mark_paid")  # type: ignore[arg-type]


def _change(order_id: str) -> OrderChanged:
    before = OrderState(OrderStatus.PENDING, 2000, "USD", 0, 0)
    after = OrderState(OrderStatus.PAID, 2000, "USD", 2000, 0)
    return OrderChanged(
        order_id, before, after, Cause("stripe", "evt_1", "payment_intent.succeeded")
    )


@pytest.mark.parametrize(
    "order_id",
    ["order-1001", "x" * 7900, "x" * 20_000, "\N{GRINNING FACE}" * 700, "é" * 5000],
)
def test_the_payload_always_fits_a_notify(order_id: str) -> None:
    payload = notify_payload(_change(order_id))
    # ASCII, so its length is its size in bytes in any server encoding.
    assert payload.isascii()
    assert len(payload) <= MAX_NOTIFY_BYTES
    decoded = json.loads(payload)
    assert decoded["status"] == "paid"
    assert decoded["previous_status"] == "pending"
    if decoded.get("truncated"):
        assert set(decoded) <= {"truncated", "order_id", "status", "previous_status"}
    else:
        assert decoded["order_id"] == order_id
        assert decoded["event_id"] == "evt_1"
    if "order_id" in decoded:
        assert decoded["order_id"] == order_id
