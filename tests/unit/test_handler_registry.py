"""The handler registry: exact handlers first, then a provider's fallback, else none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hookline.handlers import Event, HandlerContext, HandlerRegistry, LedgerStatus, Outcome
from hookline.handlers import registry as default_registry
from hookline.handlers.shopify import ORDER_TOPICS, REFUND_TOPICS, by_body_shape


def exact(context: HandlerContext, event: Event) -> Outcome:
    return Outcome(LedgerStatus.APPLIED)


def fallback(context: HandlerContext, event: Event) -> Outcome:
    return Outcome(LedgerStatus.IGNORED)


def other(context: HandlerContext, event: Event) -> Outcome:
    return Outcome(LedgerStatus.STALE)


@pytest.fixture
def registry() -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register("shop", "orders/paid")(exact)
    registry.register_fallback("shop")(fallback)
    return registry


def test_an_exact_handler_wins_and_the_fallback_takes_the_rest(registry: HandlerRegistry) -> None:
    assert registry.get("shop", "orders/paid") is exact
    assert registry.get("shop", "app/uninstalled") is fallback
    assert registry.get("stripe", "app/uninstalled") is None  # no fallback: ignored


def test_an_exact_handler_registered_after_the_fallback_still_wins(
    registry: HandlerRegistry,
) -> None:
    registry.register("shop", "customers/update")(other)
    assert registry.get("shop", "customers/update") is other


def test_event_types_lists_exact_types_only(registry: HandlerRegistry) -> None:
    assert registry.event_types("shop") == ["orders/paid"]
    registry.register_fallback("bare")(fallback)
    assert registry.event_types("bare") == []


def test_a_second_fallback_is_refused_unless_replacing(registry: HandlerRegistry) -> None:
    registry.register_fallback("shop")(fallback)  # the same one again is no conflict
    with pytest.raises(ValueError, match="already has a fallback"):
        registry.register_fallback("shop")(other)
    registry.register_fallback("shop", replace=True)(other)
    assert registry.get("shop", "app/uninstalled") is other


@pytest.fixture
def team_handler() -> Iterator[None]:
    """A team's own Shopify handler, on the registry the consumer uses."""
    default_registry.register("shopify", "customers/update")(other)
    try:
        yield
    finally:
        default_registry._handlers.pop(("shopify", "customers/update"))


def test_every_shopify_topic_goes_through_the_body(team_handler: None) -> None:
    assert default_registry.get("shopify", "app/uninstalled") is by_body_shape
    assert default_registry.get("shopify", "orders/paid") is by_body_shape
    # A team's exact handler wins over Shopify's fallback.
    assert default_registry.get("shopify", "customers/update") is other
    assert default_registry.event_types("shopify") == sorted(
        [*ORDER_TOPICS, *REFUND_TOPICS, "customers/update"]
    )
