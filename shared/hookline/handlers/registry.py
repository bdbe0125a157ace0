"""Domain handlers keyed by (provider, event_type).

Built-in handlers register on import of `hookline.handlers`; a team registers
its own the same way, in a module named in HOOKLINE_HANDLER_MODULES:

    from hookline.handlers import registry, Outcome, LedgerStatus

    @registry.register("stripe", "customer.subscription.updated")
    def save_subscription(context, event):
        context.connection.execute("INSERT INTO subscriptions ...", (...))
        return Outcome(LedgerStatus.APPLIED)

A provider may also have one fallback, `@registry.register_fallback(provider)`:
it runs for that provider's event types that have no handler of their own (an
exact handler, a team's included, always wins). A provider whose event type is
an unsigned label (Shopify's topic) uses it, so that what happens follows the
signed body whatever the label says, instead of an unknown label meaning
`ignored`. `event_types(provider)` still lists the exact types only.

The shop learns what happened to its orders through callbacks registered the
same way, `@registry.on_order_change`: each runs inside the transaction that
changed an order, with the order before and after (hookline.outbox).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from hookline.handlers.base import Handler
from hookline.outbox import OrderCallback


def _package_of(function: Callable[..., object]) -> str | None:
    # co_filename, not __file__: both sides then come from the same compilation
    # (a .pyc built elsewhere keeps the path it was built at).
    code = getattr(function, "__code__", None)
    return os.path.dirname(code.co_filename) if code is not None else None


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._fallbacks: dict[str, Handler] = {}
        self._order_callbacks: list[OrderCallback] = []

    def register(
        self, provider: str, *event_types: str, replace: bool = False
    ) -> Callable[[Handler], Handler]:
        """Decorator. Registering a taken key is an error unless `replace=True`."""
        if not event_types:
            raise ValueError("name at least one event type")

        def decorate(handler: Handler) -> Handler:
            for event_type in event_types:
                key = (provider, event_type)
                taken = self._handlers.get(key)
                if taken is not None and taken is not handler and not replace:
                    raise ValueError(f"{provider} {event_type} already has a handler")
                self._handlers[key] = handler
            return handler

        return decorate

    def register_fallback(
        self, provider: str, *, replace: bool = False
    ) -> Callable[[Handler], Handler]:
        """Decorator: `provider`'s handler for event types without one of their own.

        One per provider; registering a second is an error unless `replace=True`.
        """

        def decorate(handler: Handler) -> Handler:
            taken = self._fallbacks.get(provider)
            if taken is not None and taken is not handler and not replace:
                raise ValueError(f"{provider} already has a fallback handler")
            self._fallbacks[provider] = handler
            return handler

        return decorate

    def get(self, provider: str, event_type: str) -> Handler | None:
        """The exact handler, else the provider's fallback, else None (`ignored`)."""
        handler = self._handlers.get((provider, event_type))
        return handler if handler is not None else self._fallbacks.get(provider)

    @staticmethod
    def is_builtin(handler: Handler) -> bool:
        """Whether `handler` is one of hookline's own (its code is in `hookline.handlers`).

        Those reach the connection only through `hookline.payments`, so the applier
        batches their statements and trusts them not to change the session; a team's
        handler gets every statement sent as it asks and the session checked after it.
        Judged by where the function's code lives, not by `__module__`: a team's
        wrapper around a built-in (`functools.wraps` copies `__module__`) is the team's.
        """
        return _package_of(handler) == _package_of(_package_of)

    def on_order_change(self, callback: OrderCallback) -> OrderCallback:
        """Decorator: run `callback(connection, change)` inside every transaction that
        changes an order's status or amounts, after the order row is written.

        Callbacks run in the order they were registered. Registering one twice, or
        an `async def` (whose coroutine would never run), is an error.
        """
        if not callable(callback):
            raise TypeError(f"{callback!r} is not callable")
        if inspect.iscoroutinefunction(callback):
            raise TypeError(
                "an order callback runs inside the database transaction: use a plain def"
            )
        if callback in self._order_callbacks:
            name = getattr(callback, "__qualname__", repr(callback))
            raise ValueError(f"{name} is already an order callback")
        self._order_callbacks.append(callback)
        return callback

    @property
    def order_callbacks(self) -> tuple[OrderCallback, ...]:
        """The order callbacks, in the order they run."""
        return tuple(self._order_callbacks)

    def event_types(self, provider: str) -> list[str]:
        """Every event type `provider` has an exact handler for, sorted (no fallback)."""
        return sorted(t for p, t in self._handlers if p == provider)


registry = HandlerRegistry()
