"""What the soak sends: realistic lifecycles from the model, as providers deliver them.

Payments and their events come from tests/support/model.py (the same
lifecycles and the same oracle the model-based test uses), drawn from a seeded
Random instead of hypothesis, at the mix the issue names:

- 20% of deliveries are duplicates of an earlier one (a provider's retry:
  signed afresh, same event);
- lifecycles are shuffled (providers keep no order);
- 5% of the shop's orders are saved only while the run goes on (their events
  arrive first, as orphans, and must settle);
- 1% of orders disagree with what was paid (amount or currency);
- 0.5% of deliveries are poison (they fail on their own and must be parked);
- 2% are forged: a captured genuine delivery with one signed part changed, or
  a new event signed with the wrong secret; every one must be refused and leave
  nothing behind;
- a few events of every other provider (GitHub, Svix, Standard Webhooks) and of
  types no handler knows: recorded as ignored.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hookline.providers.mercadopago import event_id as mercadopago_event_id
from hookline.simulate import events as simulated
from hookline.simulate.events import SimulatedEvent

from tests.support import model
from tests.support.model import (
    AMOUNTS,
    GENUINE,
    POISON,
    UNHANDLED,
    UNHANDLED_TYPE,
    Case,
    Delivery,
    Ev,
    Expected,
    Order,
    Payment,
    Seeded,
    World,
    ev,
)

DUPLICATES = 0.20
FORGED = 0.02
POISONED = 0.005
LATE_ORDERS = 0.05
MISMATCHED_ORDERS = 0.01
OTHER_PROVIDERS = ("github", "svix", "standard")
# The soak's model (tests/support/model.py, this module) has no lifecycles for
# these yet: the simulator signs them, the soak does not send them. Drop each once it does.
NOT_YET_SOAKED = (
    "paddle",
    "adyen",
    "esewa",
    "khalti",
    "mollie",
    "razorpay",
    "lemonsqueezy",
    "woocommerce",
)

# Share of genuine events from the providers no handler applies (ignored).
OTHER_SHARE = 0.02
UNHANDLED_SHARE = 0.002
NUL_SHARE = 0.001

CURRENCY = {"stripe": "usd", "square": "USD", "shopify": "USD", "mercadopago": "BRL"}


@dataclass(frozen=True)
class Send:
    """One delivery: a genuine event (perhaps again), or a forgery of one."""

    event: SimulatedEvent
    key: tuple[str, str]  # (provider, event id) as the ledger will know it
    copy: int = 0  # 0: the first delivery; n: the provider's n-th retry
    # "" genuine; "tampered": a captured delivery with a signed part changed after
    # signing; "wrong_secret": a new event signed with a secret not the real one.
    forged: str = ""
    # A tampered forgery: the genuine delivery it was captured from (what was signed).
    original: SimulatedEvent | None = None


@dataclass(frozen=True)
class SaveOrder:
    """The shop's own code saves order `order_id` (one it had not saved yet)."""

    order_id: str
    amount: int
    currency: str


Step = Send | SaveOrder


@dataclass
class Workload:
    seed: int
    world: World
    steps: list[Step]
    # Ledger statuses expected of events outside the model (other providers).
    others: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    # Orders saved before the first delivery.
    orders_before: list[SaveOrder] = field(default_factory=list)

    @property
    def sends(self) -> list[Send]:
        return [step for step in self.steps if isinstance(step, Send)]

    @property
    def forged_keys(self) -> set[tuple[str, str]]:
        """Keys of forgeries that name no genuine event: no ledger row may have them."""
        return {s.key for s in self.sends if s.forged == "wrong_secret"}

    def expected(self) -> Expected:
        return model.expected(self.world)

    def late_payment_keys(self) -> set[tuple[str, str]]:
        """Events about orders saved during the run: their latency is the shop's, not ours."""
        late = {step.order_id for step in self.steps if isinstance(step, SaveOrder)}
        return {
            d.key for d in self.world.deliveries if self.world.order_id_of(d.spec.payment) in late
        }


def _payments(
    choose: Seeded, rng: random.Random, events_wanted: int
) -> tuple[list[Order], list[Payment], list[Ev]]:
    orders: list[Order] = []
    order_currency: list[str] = []
    order_total: list[int] = []
    payments: list[Payment] = []
    found: list[Ev] = []
    while len(found) < events_wanted:
        p = len(payments)
        provider = choose.one_of(model.PROVIDERS)
        amount = choose.one_of(AMOUNTS)
        if provider == "shopify" and rng.random() < 0.1:
            amount = 0  # a free order
        currency = CURRENCY[provider]
        order: int | None = None
        if provider != "shopify":
            recent = range(max(0, len(order_currency) - 20), len(order_currency))
            same = [k for k in recent if order_currency[k] == currency.upper()]
            if same and rng.random() < 0.1:
                # A split payment: one more payment towards a recent order.
                order = rng.choice(same)
                order_total[order] += amount
            else:
                order_currency.append(currency.upper())
                order_total.append(amount)
                order = len(order_currency) - 1
        fetched, refunded = "", 0
        if provider == "mercadopago":
            fetched, refunded = model.mercadopago_state(choose, amount)
        payments.append(Payment(provider, amount, currency, order, fetched, refunded))
        found += model.lifecycle(choose, p, provider, amount)
    for k, currency in enumerate(order_currency):
        amount, shown = order_total[k], currency
        draw = rng.random()
        if draw < MISMATCHED_ORDERS / 2:
            amount += 100
        elif draw < MISMATCHED_ORDERS:
            shown = "EUR"
        elif draw < 0.1:
            shown = currency.lower()  # the shop writes it in lower case: still a match
        saved = "during" if rng.random() < LATE_ORDERS else "before"
        orders.append(Order(amount, shown, saved))
    return orders, payments, found


def _http_event(delivery: Delivery, rng: random.Random) -> tuple[SimulatedEvent, Delivery]:
    """The delivery as its provider posts it; the ledger key it will have."""
    envelope = delivery.envelope
    provider = envelope.provider
    body = json.dumps(delivery.payload).encode()
    headers: dict[str, str] = {"content-type": "application/json"}
    query: dict[str, str] = {}
    event_id = envelope.event_id
    if provider == "stripe":
        assert delivery.payload["id"] == event_id
    elif provider == "square":
        assert delivery.payload["event_id"] == event_id
    elif provider == "shopify":
        headers |= {
            "x-shopify-topic": envelope.event_type,
            "x-shopify-event-id": event_id,
            "x-shopify-webhook-id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "x-shopify-shop-domain": "hookline-soak.myshopify.com",
            "x-shopify-api-version": "2024-10",
        }
    else:
        request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        data_id = str(delivery.payload["data"]["id"])
        headers["x-request-id"] = request_id
        query = {"data.id": data_id, "type": "payment"}
        event_id = mercadopago_event_id(data_id, request_id, "")
        # The ledger knows a Mercado Pago notification by its signed parts.
        delivery = Delivery(
            delivery.index,
            delivery.spec,
            envelope.model_copy(update={"event_id": event_id}),
            delivery.payload,
        )
    event = SimulatedEvent(provider, envelope.event_type, event_id, body, headers, query)
    return event, delivery


def _tampered(send: Send) -> Send:
    """The captured delivery with one signed part changed after signing."""
    event = send.event
    if event.provider == "mercadopago":
        headers = {**event.headers, "x-request-id": str(uuid.uuid4())}
        changed = SimulatedEvent(
            event.provider, event.event_type, event.event_id, event.body, headers, event.query
        )
    else:
        # An attacker's edit of the amount; the bytes differ by one digit or more.
        body = event.body.replace(b'"amount": ', b'"amount": 9', 1)
        if body == event.body:
            body = event.body[:-1] + b', "forged": true}'
        changed = SimulatedEvent(
            event.provider, event.event_type, event.event_id, body, event.headers, event.query
        )
    return Send(changed, send.key, forged="tampered", original=event)


def build(seed: int, deliveries: int) -> Workload:
    """About `deliveries` deliveries in sending order, with the shop's order saves between."""
    rng = random.Random(seed)
    choose = Seeded(rng)
    genuine_wanted = round(deliveries * (1 - DUPLICATES - FORGED))
    others_wanted = max(len(OTHER_PROVIDERS), round(genuine_wanted * OTHER_SHARE))
    poison_wanted = max(1, round(deliveries * POISONED))
    unhandled_wanted = max(1, round(genuine_wanted * UNHANDLED_SHARE))
    model_wanted = genuine_wanted - others_wanted - poison_wanted - unhandled_wanted
    orders, payments, lifecycle = _payments(choose, rng, model_wanted)
    poisonable = [p for p, payment in enumerate(payments) if payment.provider != "mercadopago"]
    poison_type = {
        "stripe": "payment_intent.succeeded",
        "square": "payment.updated",
        "shopify": "orders/paid",
    }
    extras = [
        ev(p, poison_type[payments[p].provider], POISON)
        for p in rng.sample(poisonable, min(poison_wanted, len(poisonable)))
    ]
    extras += [
        ev(rng.randrange(len(payments)), UNHANDLED_TYPE, UNHANDLED) for _ in range(unhandled_wanted)
    ]
    for e in rng.sample(range(len(lifecycle)), max(1, round(len(lifecycle) * NUL_SHARE))):
        item = lifecycle[e]
        lifecycle[e] = Ev(item.payment, item.type, GENUINE, (*item.facts, ("nul", True)))
    world = model.materialize(Case(tuple(orders), tuple(payments), tuple(lifecycle + extras)))

    originals: list[Send] = []
    converted: list[Delivery] = []
    for delivery in world.deliveries:
        event, delivery = _http_event(delivery, rng)
        converted.append(delivery)
        originals.append(Send(event, delivery.key))
    world.deliveries = converted
    others: dict[tuple[str, str], frozenset[str]] = {}
    for n in range(others_wanted):
        provider = OTHER_PROVIDERS[n % len(OTHER_PROVIDERS)]
        kind = rng.choice(simulated.event_types(provider))
        event = simulated.build(provider, kind, simulated.Subject.new(rng), rng)
        originals.append(Send(event, (provider, event.event_id)))
        others[(provider, event.event_id)] = frozenset({"ignored"})

    # Each step gets a place in the run (0..1) and the run is sorted by it:
    # originals anywhere (shuffled lifecycles), each retry after its original.
    placed: list[tuple[float, Step]] = [(rng.random(), send) for send in originals]
    for copy in range(round(deliveries * DUPLICATES)):
        at, original = rng.choice(placed[: len(originals)])
        assert isinstance(original, Send)
        placed.append((rng.uniform(at, 1.0), Send(original.event, original.key, copy + 1)))
    for n in range(round(deliveries * FORGED)):
        if n % 2 == 0:
            forged = _tampered(rng.choice(originals))
        else:
            provider = rng.choice(("stripe", "square", "shopify", "github"))
            kind = rng.choice(simulated.event_types(provider))
            event = simulated.build(provider, kind, simulated.Subject.new(rng), rng)
            forged = Send(event, (provider, event.event_id), forged="wrong_secret")
        placed.append((rng.random(), forged))
    before: list[SaveOrder] = []
    for k, order in enumerate(world.case.orders):
        save = SaveOrder(world.order_ids[k], order.amount, order.currency)
        if order.saved == "before":
            before.append(save)
        else:
            # Late: after some of its events have arrived, before the run ends.
            placed.append((rng.uniform(1 / 3, 0.9), save))
    steps = [step for _, step in sorted(placed, key=lambda item: item[0])]
    return Workload(seed, world, steps, others, before)


def describe(workload: Workload) -> dict[str, Any]:
    """Counts for the report: what was planned, from the plan alone."""
    sends = workload.sends
    genuine = [s for s in sends if not s.forged]
    roles = [d.spec.role for d in workload.world.deliveries]
    return {
        "deliveries": len(sends),
        "events": len({s.key for s in genuine}),
        "duplicates": sum(1 for s in genuine if s.copy),
        "forged": sum(1 for s in sends if s.forged),
        "poison": roles.count(POISON),
        "payments": len(workload.world.case.payments),
        "orders": len(workload.world.case.orders),
        "late_orders": sum(1 for s in workload.steps if isinstance(s, SaveOrder)),
        "mismatched_orders": sum(
            1
            for k, order in enumerate(workload.world.case.orders)
            if order.currency.upper()
            not in (p.currency.upper() for p in workload.world.case.payments if p.order == k)
            or order.amount != sum(p.amount for p in workload.world.case.payments if p.order == k)
        ),
        "by_provider": dict(sorted(Counter(s.event.provider for s in sends).items())),
    }
