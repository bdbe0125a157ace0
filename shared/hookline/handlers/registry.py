"""Domain handlers keyed by (provider, event_type).

Built-in handlers register on import of `hookline.handlers`; a team registers
its own the same way, in a module named in HOOKLINE_HANDLER_MODULES:

    from hookline.handlers import registry, Outcome, LedgerStatus

    @registry.register("stripe", "customer.subscription.updated")
    def save_subscription(context, event):
        context.connection.execute("INSERT INTO subscriptions ...", (...))
        return Outcome(LedgerStatus.APPLIED)
"""

from __future__ import annotations

from collections.abc import Callable

from hookline.handlers.base import Handler


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], Handler] = {}

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

    def get(self, provider: str, event_type: str) -> Handler | None:
        return self._handlers.get((provider, event_type))

    def event_types(self, provider: str) -> list[str]:
        """Every event type `provider` has a handler for, sorted."""
        return sorted(t for p, t in self._handlers if p == provider)


registry = HandlerRegistry()
