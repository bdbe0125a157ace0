"""A model of the whole apply path, for tests/integration/test_model.py.

Five parts:

- **Specs** (`Case`): orders, payments across providers with realistic
  lifecycles, poison events, a counting event type, and a schedule of what
  happens (sends, duplicates, consumer invocations, reconciler runs, the shop
  saving an order, crashes, outages). Ids in a spec are logical (`o0`, `p1`,
  `e3`), so a shrunk example reads the same on every run.
- **Strategies** (`cases()`): hypothesis strategies for those specs.
- **Materializing** (`World`): concrete ids (unique per example), envelopes as
  the receiver queues them, and the payments the Mercado Pago sandbox serves.
- **The oracle** (`expected`): the payments, orders and ledger rows the events
  alone imply, by the rules of issue 10. It reads the payloads it built,
  never hookline code.
- **The harness** (`Harness`): drives the real consumer and reconciler Lambda
  handlers against moto SQS/DynamoDB and real PostgreSQL, with crash points
  and outages, drains the system, and lists every disagreement with the oracle.

Crash points (`Crash` is a BaseException, as a dying process is: nothing
catches it, nothing after it runs):

- `in_transaction`: a handler wrapper raises after the handler wrote, before commit.
- `before_idempotency_save`: Powertools' `save_success` raises: the event
  committed, its DynamoDB record stays INPROGRESS.
- `before_delete`: the handler answered, the event source mapping never deletes.
- `reconciler_before_dlq_delete`: the reconciler re-sent (or parked) a dead
  letter and dies before deleting it from the DLQ.

A crash point armed by a schedule step fires the `after`-th time the code
reaches it from then on (that invocation or a later one, the final drain
included), so every armed crash happens once there is work to crash in.

After a crash, a fresh container follows (the cached consumer/reconciler is
dropped and its server-side connection terminated) and time passes: every
in-flight message becomes visible again (its visibility timeout ran out) and
every INPROGRESS idempotency record with an in-progress expiry has expired
(the Lambda timeout it was given is over). Time passing is done on moto's
backend directly (`time_passes`; also `queue_counts` and `reset`), the one
place this module reaches into moto's internals.

What no correct system does is recorded as an error of the run and reported
with the row disagreements: a consumer invocation that raises instead of
answering, a reconciler run that raises, a system that does not drain.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import psycopg
from botocore.exceptions import ClientError
from hookline import template
from hookline.consumer.build import consumer
from hookline.database import describe
from hookline.envelope import Envelope
from hookline.lambda_events import sqs_event
from hookline.local import resources
from hookline.local.runtime import Invocation
from hookline.local.sandbox import ProviderSandbox, mercadopago_payment
from hookline.local.sources import failed_message_ids
from hookline.reconcile.build import reconciler
from hookline.reconcile.redrive import REDRIVES_ATTRIBUTE
from hypothesis import strategies as st
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.sqs.models import sqs_backends
from psycopg import sql

from tests.support import events
from tests.support.lambda_context import FakeLambdaContext
from tests.support.pipeline import Pipeline
from tests.support.postgres import insert_order
from tests.support.tcp_proxy import TcpProxy

# --------------------------------------------------------------------- specs

PROVIDERS = ("stripe", "square", "shopify", "mercadopago")
GENUINE, POISON, COUNTED, UNHANDLED = "genuine", "poison", "counted", "unhandled"
T = TypeVar("T")
COUNTED_TYPE = "test.counted"
UNHANDLED_TYPE = "test.unhandled"
CRASH_POINTS = ("in_transaction", "before_idempotency_save", "before_delete")
RECONCILER_CRASH = "reconciler_before_dlq_delete"
DEPENDENCIES = ("consumer_database", "database", "dynamodb", "mercadopago")


@dataclass(frozen=True)
class Order:
    """An order the shop saves itself (Shopify orders are created by their events)."""

    amount: int
    currency: str  # as the shop writes it
    saved: str = "before"  # "before" the first step, "during" (a ShopSavesOrder step), "never"


@dataclass(frozen=True)
class Payment:
    provider: str
    amount: int  # minor units requested (Shopify: the order's total_price)
    currency: str  # as the provider writes it
    order: int | None = None  # index in Case.orders; None for Shopify (its own order)
    fetched: str = ""  # Mercado Pago: the payment's status at the API
    fetched_refunded: int = 0  # Mercado Pago: transaction_amount_refunded


@dataclass(frozen=True)
class Ev:
    """One event about payment `payment`. `facts` are what its payload says beyond the payment."""

    payment: int
    type: str
    role: str = GENUINE
    facts: tuple[tuple[str, Any], ...] = ()

    def fact(self, name: str, default: Any = None) -> Any:
        return dict(self.facts).get(name, default)

    def describe(self) -> str:
        role = "" if self.role == GENUINE else f"{self.role.upper()} "
        facts = " ".join(f"{k}={v}" for k, v in self.facts)
        return f"p{self.payment} {role}{self.type}{' ' + facts if facts else ''}"


def ev(payment: int, type_: str, role: str = GENUINE, **facts: Any) -> Ev:
    return Ev(payment, type_, role, tuple(sorted(facts.items())))


# Schedule steps. Their reprs are what a failing example prints.


@dataclass(frozen=True)
class Send:
    """The provider delivers event `event` (copy > 0: again; new_id: under a new dedup id)."""

    event: int
    copy: int = 0
    new_id: bool = False

    def __repr__(self) -> str:
        if self.copy == 0:
            return f"send e{self.event}"
        return f"send e{self.event} again ({'new' if self.new_id else 'same'} dedup id)"


@dataclass(frozen=True)
class Invoke:
    """One consumer invocation on up to `batch` messages. `crash`: from now on, the
    `after`-th time the consumer reaches that point (in this invocation or a later
    one, the final drain included) its process dies there."""

    batch: int = 10
    crash: str | None = None
    after: int = 1  # crash at the after-th handler call / idempotency save

    def __repr__(self) -> str:
        if self.crash is None:
            return f"invoke {self.batch}"
        at = "" if self.crash == "before_delete" else f" #{self.after}"
        return f"invoke {self.batch} CRASH {self.crash}{at}"


@dataclass(frozen=True)
class Drain:
    """Consumer invocations until the queue is empty or an invocation made no progress."""

    def __repr__(self) -> str:
        return "drain"


@dataclass(frozen=True)
class Reconcile:
    crash: bool = False

    def __repr__(self) -> str:
        # The crash happens at the next dead letter a reconciler run handles.
        return f"reconcile{' CRASH ' + RECONCILER_CRASH if self.crash else ''}"


@dataclass(frozen=True)
class ShopSavesOrder:
    order: int

    def __repr__(self) -> str:
        return f"shop saves o{self.order}"


@dataclass(frozen=True)
class Outage:
    dependency: str
    down: bool

    def __repr__(self) -> str:
        return f"{self.dependency} {'DOWN' if self.down else 'up'}"


@dataclass(frozen=True)
class DeadLetter:
    """A copy of event `event` sits in the DLQ, already redriven `redrives` times (as
    after Lambda itself failed maxReceiveCount times, or an outage outlasted earlier
    redrives). It never failed on its own: it must apply, never be parked."""

    event: int
    redrives: int = 0

    def __repr__(self) -> str:
        return f"dead letter e{self.event}" + (
            f" redriven {self.redrives}x" if self.redrives else ""
        )


@dataclass(frozen=True)
class Poll:
    """Up to `times` consumer invocations, failing or not, as the event source mapping
    keeps polling through an outage (receive counts climb)."""

    times: int

    def __repr__(self) -> str:
        return f"poll x{self.times}"


Step = Send | Invoke | Drain | Poll | Reconcile | ShopSavesOrder | Outage | DeadLetter


@dataclass(frozen=True)
class Case:
    orders: tuple[Order, ...]
    payments: tuple[Payment, ...]
    events: tuple[Ev, ...]
    schedule: tuple[Step, ...] = ()

    def __repr__(self) -> str:
        lines = ["Case("]
        for k, order in enumerate(self.orders):
            lines.append(f"  o{k}: {order.amount} {order.currency}, saved {order.saved}")
        for p, payment in enumerate(self.payments):
            target = "its own order" if payment.order is None else f"o{payment.order}"
            extra = ""
            if payment.provider == "mercadopago":
                extra = f", fetched {payment.fetched} refunded={payment.fetched_refunded}"
            lines.append(
                f"  p{p}: {payment.provider} {payment.amount} {payment.currency} -> {target}{extra}"
            )
        for e, item in enumerate(self.events):
            lines.append(f"  e{e}: {item.describe()}")
        lines.append("  schedule: " + " | ".join(repr(step) for step in self.schedule))
        lines.append(")")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


# ---------------------------------------------------------------- strategies

AMOUNTS = (1000, 2000, 2599, 4200)


class Chooser(Protocol):
    """Where a spec's choices come from: hypothesis (shrinkable) or a seeded Random (the soak)."""

    def one_of(self, options: Sequence[T]) -> T: ...

    def boolean(self) -> bool: ...

    def integer(self, low: int, high: int) -> int: ...


class Drawn:
    """Choices drawn from hypothesis strategies, so examples shrink."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def one_of(self, options: Sequence[T]) -> T:
        return self.draw(st.sampled_from(options))

    def boolean(self) -> bool:
        return self.draw(st.booleans())

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))


class Seeded:
    """Choices from a seeded Random: the same workload for the same seed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def one_of(self, options: Sequence[T]) -> T:
        return self.rng.choice(options)

    def boolean(self) -> bool:
        return self.rng.random() < 0.5

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)


def lifecycle(choose: Chooser, p: int, provider: str, amount: int) -> list[Ev]:
    """The events of one payment by `provider`, in their true order."""
    found: list[Ev] = []
    add = found.append
    if provider == "stripe":
        variant = choose.one_of(
            ["paid", "partial_capture", "failed_then_paid", "failed", "canceled", "checkout"]
        )
        if choose.boolean():
            add(ev(p, "payment_intent.created"))
        if variant in ("failed_then_paid", "failed"):
            add(ev(p, "payment_intent.payment_failed"))
        if variant == "canceled":
            add(ev(p, "payment_intent.canceled"))
        if variant in ("paid", "partial_capture", "failed_then_paid", "checkout"):
            if choose.boolean():
                add(ev(p, "payment_intent.processing"))
            received = amount
            if variant == "partial_capture":
                received = choose.one_of([amount * 4 // 5, amount // 2])
            if variant == "checkout":
                add(ev(p, "checkout.session.completed"))
                if choose.boolean():
                    add(ev(p, "payment_intent.succeeded", received=received))
            else:
                add(ev(p, "payment_intent.succeeded", received=received))
            refunds = choose.integer(0, 2)
            cumulative = []
            if refunds == 1:
                cumulative = [choose.one_of([received // 2, received])]
            elif refunds == 2:
                cumulative = [received // 4, choose.one_of([received // 2, received])]
            for total in cumulative:
                add(ev(p, "charge.refunded", captured=received, refunded=total))
    elif provider == "square":
        variant = choose.one_of(["completed", "failed", "canceled"])
        if choose.boolean():
            add(ev(p, "payment.created", status=choose.one_of(["PENDING", "APPROVED"])))
        if variant == "completed":
            if choose.boolean():
                add(ev(p, "payment.updated", status="APPROVED"))
            add(ev(p, "payment.updated", status="COMPLETED"))
            first = choose.one_of([amount // 4, amount // 2])
            amounts = [first, choose.one_of([amount // 4, amount - first])]
            completed_total = 0
            for r in range(choose.integer(0, 2)):
                if choose.boolean():
                    add(ev(p, "refund.created", refund=r, status="PENDING", amount=amounts[r]))
                if choose.integer(0, 3) > 0:
                    add(ev(p, "refund.updated", refund=r, status="COMPLETED", amount=amounts[r]))
                    completed_total += amounts[r]
            if completed_total and choose.boolean():
                add(ev(p, "payment.updated", status="COMPLETED", refunded_money=completed_total))
        elif variant == "failed":
            add(ev(p, "payment.updated", status="FAILED"))
        else:
            add(ev(p, "payment.updated", status="CANCELED"))
    elif provider == "shopify":
        variant = "free" if amount == 0 else choose.one_of(["paid", "pending_then_paid", "voided"])
        if variant in ("pending_then_paid", "voided"):
            add(ev(p, "orders/create", financial="pending"))
        else:
            add(ev(p, "orders/create", financial="paid"))
        if variant == "pending_then_paid" or (variant != "voided" and choose.boolean()):
            add(ev(p, "orders/paid", financial="paid"))
        if variant == "voided":
            add(ev(p, "orders/cancelled", financial="voided"))
        if variant in ("paid", "pending_then_paid"):
            first = choose.one_of([amount // 4, amount // 2])
            amounts = [first, choose.one_of([amount // 4, amount - first])]
            refunded = 0
            for r in range(choose.integer(0, 2)):
                failed = choose.one_of([0, 0, amount // 10])
                add(ev(p, "refunds/create", refund=r, amount=amounts[r], failed=failed))
                refunded += amounts[r]
            if choose.integer(0, 3) == 0:
                financial = (
                    "refunded"
                    if refunded == amount
                    else "partially_refunded"
                    if refunded
                    else "paid"
                )
                add(ev(p, "orders/cancelled", financial=financial))
    else:
        for _ in range(choose.integer(1, 3)):
            add(ev(p, "payment"))
    return found


def mercadopago_state(choose: Chooser, amount: int) -> tuple[str, int]:
    """A Mercado Pago payment's status and refunded amount at the API."""
    state = choose.one_of(
        [
            "approved",
            "approved_partly_refunded",
            "refunded",
            "refunded_unreported",
            "charged_back",
            "rejected",
            "cancelled",
            "in_process",
        ]
    )
    if state == "approved_partly_refunded":
        return "approved", amount // 2
    if state == "refunded":
        return "refunded", amount
    if state == "refunded_unreported":
        return "refunded", 0
    return state, 0


_ORDER_SAVED = st.sampled_from(["before", "before", "during", "during", "never"])


@st.composite
def cases(draw: st.DrawFn, max_payments: int = 6, max_extra_steps: int = 12) -> Case:
    """A scenario and a schedule for it."""
    count = draw(st.integers(2, max_payments))
    providers = [draw(st.sampled_from(PROVIDERS)) for _ in range(count)]
    payments: list[Payment] = []
    genuine: list[Ev] = []
    order_currency: list[str] = []  # upper-case currency of each shop order's payments
    order_of: list[int | None] = []
    for p, provider in enumerate(providers):
        amount = draw(st.sampled_from(AMOUNTS))
        if provider == "shopify" and draw(st.integers(0, 4)) == 0:
            amount = 0  # a free order
        currency = {"stripe": "usd", "square": "USD", "shopify": "USD", "mercadopago": "BRL"}[
            provider
        ]
        order: int | None = None
        if provider != "shopify":
            same = [k for k, c in enumerate(order_currency) if c == currency.upper()]
            if same and draw(st.integers(0, 3)) == 0:
                order = draw(st.sampled_from(same))  # a split payment
            else:
                order_currency.append(currency.upper())
                order = len(order_currency) - 1
        order_of.append(order)
        fetched, fetched_refunded = "", 0
        if provider == "mercadopago":
            fetched, fetched_refunded = mercadopago_state(Drawn(draw), amount)
        events_of = lifecycle(Drawn(draw), p, provider, amount)
        payments.append(Payment(provider, amount, currency, order, fetched, fetched_refunded))
        genuine += events_of
    orders: list[Order] = []
    for k, currency in enumerate(order_currency):
        total = sum(payments[p].amount for p, o in enumerate(order_of) if o == k)
        variant = draw(st.sampled_from(["exact", "exact", "exact", "lower_case", "more", "other"]))
        amount = total + 100 if variant == "more" else total
        shown = (
            currency.lower()
            if variant == "lower_case"
            else ("EUR" if variant == "other" else currency)
        )
        orders.append(Order(amount, shown, draw(_ORDER_SAVED)))
    extras: list[Ev] = []
    poisonable = [p for p, payment in enumerate(payments) if payment.provider != "mercadopago"]
    if poisonable:
        for _ in range(draw(st.integers(0, 2))):
            p = draw(st.sampled_from(poisonable))
            poison_type = {
                "stripe": "payment_intent.succeeded",
                "square": "payment.updated",
                "shopify": "orders/paid",
            }[payments[p].provider]
            extras.append(ev(p, poison_type, POISON))
    for _ in range(draw(st.integers(0, 2))):
        extras.append(ev(draw(st.integers(0, count - 1)), COUNTED_TYPE, COUNTED))
    if draw(st.integers(0, 3)) == 0:
        extras.append(ev(draw(st.integers(0, count - 1)), UNHANDLED_TYPE, UNHANDLED))
    if draw(st.integers(0, 3)) == 0:
        # A genuine event whose signed JSON holds a NUL character (jsonb refuses "\u0000").
        e = draw(st.integers(0, len(genuine) - 1))
        genuine[e] = Ev(
            genuine[e].payment, genuine[e].type, GENUINE, (*genuine[e].facts, ("nul", True))
        )
    all_events = tuple(genuine + extras)
    case = Case(tuple(orders), tuple(payments), all_events)
    return Case(case.orders, case.payments, case.events, draw(schedules(case, max_extra_steps)))


_EXTRA_STEPS: st.SearchStrategy[Step] = st.one_of(
    st.builds(Invoke, batch=st.integers(1, 10)),
    st.builds(
        Invoke,
        batch=st.integers(1, 10),
        crash=st.sampled_from(CRASH_POINTS),
        after=st.sampled_from([1, 1, 2, 3]),
    ),
    st.just(Drain()),
    st.builds(Poll, times=st.integers(2, 8)),
    st.builds(Reconcile, crash=st.booleans()),
    st.builds(Outage, dependency=st.sampled_from(DEPENDENCIES), down=st.booleans()),
)


@st.composite
def schedules(draw: st.DrawFn, case: Case, max_extra_steps: int = 12) -> tuple[Step, ...]:
    """Every event sent once in a random order (providers do not keep order; SQS keeps
    the send order within a group), duplicates after their original, the shop saving
    its `during` orders, and invocations, reconciler runs, crashes and outages between."""
    count = len(case.events)
    steps: list[Step] = [Send(e) for e in draw(st.permutations(range(count)))]
    for copy, (event, new_id) in enumerate(
        draw(st.lists(st.tuples(st.integers(0, count - 1), st.booleans()), max_size=3)), 1
    ):
        first = steps.index(Send(event)) + 1
        steps.insert(draw(st.integers(first, len(steps))), Send(event, copy, new_id))
    inserts: list[Step] = [
        ShopSavesOrder(k) for k, order in enumerate(case.orders) if order.saved == "during"
    ]
    inserts += draw(st.lists(_EXTRA_STEPS, max_size=max_extra_steps))
    if draw(st.integers(0, 3)) == 0:
        genuine = [e for e, item in enumerate(case.events) if item.role != POISON]
        inserts.append(DeadLetter(draw(st.sampled_from(genuine)), draw(st.sampled_from([0, 0, 3]))))
    for step in inserts:
        steps.insert(draw(st.integers(0, len(steps))), step)
    return tuple(steps)


# --------------------------------------------------------------- materializing

_RUNS = itertools.count(1)
SHOPIFY_ORDER_BASE = 9_000_000_000
SHOPIFY_REFUND_BASE = 8_000_000_000
MERCADOPAGO_PAYMENT_BASE = 7_000_000_000
MERCADOPAGO_EVENT_BASE = 6_000_000_000


def decimal_text(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


@dataclass(frozen=True)
class Delivery:
    index: int
    spec: Ev
    envelope: Envelope
    payload: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.envelope.provider, self.envelope.event_id)


@dataclass
class World:
    """A case with concrete ids, unique to this run."""

    case: Case
    tag: str
    order_ids: list[str]
    payment_ids: list[str]
    deliveries: list[Delivery] = field(default_factory=list)
    mercadopago: dict[str, dict[str, Any]] = field(default_factory=dict)

    def order_id_of(self, p: int) -> str | None:
        payment = self.case.payments[p]
        if payment.provider == "shopify":
            return self.payment_ids[p]
        assert payment.order is not None
        return self.order_ids[payment.order]

    def legend(self) -> str:
        parts = [f"o{k}={order_id}" for k, order_id in enumerate(self.order_ids)]
        parts += [f"p{p}={payment_id}" for p, payment_id in enumerate(self.payment_ids)]
        parts += [f"e{d.index}={d.envelope.event_id}" for d in self.deliveries]
        return "ids: " + ", ".join(parts)


def _when(e: int) -> str:
    return (events.T0 + timedelta(seconds=e)).isoformat()


def materialize(case: Case) -> World:
    number = next(_RUNS)
    tag = f"m{number}"
    payment_ids = []
    for p, payment in enumerate(case.payments):
        payment_ids.append(
            {
                "stripe": f"pi_{tag}_{p}",
                "square": f"{tag}sq{p}",
                "shopify": str(SHOPIFY_ORDER_BASE + number * 100 + p),
                "mercadopago": str(MERCADOPAGO_PAYMENT_BASE + number * 100 + p),
            }[payment.provider]
        )
    world = World(case, tag, [f"{tag}-order-{k}" for k in range(len(case.orders))], payment_ids)
    for e, spec in enumerate(case.events):
        provider, event_type, object_id, event_id, payload = _event(world, number, e, spec)
        if spec.fact("nul"):
            payload["note"] = "gift\x00card"
        envelope = events.envelope(
            provider, event_type, object_id, payload, event_id=event_id, at=e
        )
        world.deliveries.append(Delivery(e, spec, envelope, payload))
    last_at = {d.spec.payment: d.index for d in world.deliveries}
    for p, payment in enumerate(case.payments):
        if payment.provider == "mercadopago":
            world.mercadopago[payment_ids[p]] = mercadopago_payment(
                payment_ids[p],
                payment.fetched,
                decimal_text(payment.amount),
                currency=payment.currency,
                external_reference=world.order_id_of(p),
                refunded=decimal_text(payment.fetched_refunded),
                updated=_when(last_at.get(p, 0)),
            )
    return world


STRIPE_INTENT_STATUS = {
    "payment_intent.created": "requires_payment_method",
    "payment_intent.processing": "processing",
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "requires_payment_method",
    "payment_intent.canceled": "canceled",
}


def _event(
    world: World, number: int, e: int, spec: Ev
) -> tuple[str, str, str, str, dict[str, Any]]:
    """(provider, event type, object id, event id, payload) of event `e`."""
    p = spec.payment
    payment = world.case.payments[p]
    payment_id = world.payment_ids[p]
    order_id = world.order_id_of(p)
    tag = world.tag
    if spec.role in (COUNTED, UNHANDLED):
        # Counted and unhandled events are Stripe's; they share the payment's group
        # when it is a Stripe payment.
        object_id = payment_id if payment.provider == "stripe" else f"obj_{tag}_{e}"
        event_id = f"evt_{tag}_{e}"
        payload = {
            "id": event_id,
            "object": "event",
            "type": spec.type,
            "created": int((events.T0 + timedelta(seconds=e)).timestamp()),
            "data": {"object": {"id": object_id}},
        }
        return "stripe", spec.type, object_id, event_id, payload
    if payment.provider == "stripe":
        return _stripe(world, e, spec, payment, payment_id, order_id)
    if payment.provider == "square":
        return _square(world, e, spec, payment, payment_id, order_id)
    if payment.provider == "shopify":
        return _shopify(world, number, e, spec, payment, payment_id)
    event_number = MERCADOPAGO_EVENT_BASE + number * 1000 + e
    payload = {
        "action": "payment.updated",
        "api_version": "v1",
        "data": {"id": payment_id},
        "date_created": _when(e),
        "id": event_number,
        "live_mode": False,
        "type": "payment",
        "user_id": 44444,
    }
    return "mercadopago", "payment", payment_id, str(event_number), payload


def _stripe(
    world: World, e: int, spec: Ev, payment: Payment, intent: str, order_id: str | None
) -> tuple[str, str, str, str, dict[str, Any]]:
    metadata = {"order_id": order_id} if order_id else {}
    amount, currency = payment.amount, payment.currency
    obj: dict[str, Any]
    if spec.role == POISON:
        obj = {
            "id": intent,
            "object": "payment_intent",
            "amount": "lots",
            "currency": currency,
            "metadata": metadata,
        }
    elif spec.type == "charge.refunded":
        captured = spec.fact("captured", amount)
        refunded = spec.fact("refunded", 0)
        obj = {
            "id": f"ch_{intent[3:]}",
            "object": "charge",
            "payment_intent": intent,
            "amount": amount,
            "amount_captured": captured,
            "amount_refunded": refunded,
            "currency": currency,
            "refunded": refunded >= captured,
            "status": "succeeded",
            "metadata": metadata,
        }
    elif spec.type == "checkout.session.completed":
        obj = {
            "id": f"cs_{intent[3:]}",
            "object": "checkout.session",
            "payment_intent": intent,
            "payment_status": "paid",
            "amount_total": amount,
            "currency": currency,
            "client_reference_id": order_id,
            "metadata": {},
        }
    else:
        succeeded = spec.type == "payment_intent.succeeded"
        obj = {
            "id": intent,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": spec.fact("received", amount) if succeeded else 0,
            "currency": currency,
            "status": STRIPE_INTENT_STATUS[spec.type],
            "metadata": metadata,
        }
    event_id = f"evt_{world.tag}_{e}"
    payload = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": int((events.T0 + timedelta(seconds=e)).timestamp()),
        "type": spec.type,
        "livemode": False,
        "data": {"object": obj},
    }
    return "stripe", spec.type, str(obj["id"]), event_id, payload


def _square(
    world: World, e: int, spec: Ev, payment: Payment, payment_id: str, order_id: str | None
) -> tuple[str, str, str, str, dict[str, Any]]:
    event_id = f"{world.tag}-sq-{e}"
    money = {"amount": payment.amount, "currency": payment.currency}
    if spec.type.startswith("refund."):
        refund_id = f"{payment_id}r{spec.fact('refund')}"
        data: dict[str, Any] = {
            "type": "refund",
            "id": refund_id,
            "object": {
                "refund": {
                    "id": refund_id,
                    "payment_id": payment_id,
                    "status": spec.fact("status"),
                    "amount_money": {"amount": spec.fact("amount"), "currency": payment.currency},
                }
            },
        }
        object_id = refund_id
    else:
        body: dict[str, Any] = {
            "id": payment_id,
            "status": "EXPLODED" if spec.role == POISON else spec.fact("status"),
            "amount_money": money,
            "total_money": money,
            "source_type": "CARD",
            "location_id": "L88917AVBK2S5",
            "order_id": f"sqo{payment_id}",
            "updated_at": _when(e),
        }
        if order_id:
            body["reference_id"] = order_id
        refunded = spec.fact("refunded_money")
        if refunded:
            body["refunded_money"] = {"amount": refunded, "currency": payment.currency}
        data = {"type": "payment", "id": payment_id, "object": {"payment": body}}
        object_id = payment_id
    payload = {
        "merchant_id": "6SSW7HV8K2ST5",
        "type": spec.type,
        "event_id": event_id,
        "created_at": _when(e),
        "data": data,
    }
    return "square", spec.type, object_id, event_id, payload


def _shopify(
    world: World, number: int, e: int, spec: Ev, payment: Payment, order_id: str
) -> tuple[str, str, str, str, dict[str, Any]]:
    event_id = f"{world.tag}-shop-{e}"
    payload: dict[str, Any]
    if spec.type == "refunds/create":
        refund = SHOPIFY_REFUND_BASE + number * 1000 + spec.payment * 10 + spec.fact("refund")
        transactions = [
            {
                "id": refund + 1,
                "kind": "refund",
                "status": "success",
                "amount": decimal_text(spec.fact("amount")),
                "currency": payment.currency,
            }
        ]
        if spec.fact("failed"):
            transactions.append(
                {
                    "id": refund + 2,
                    "kind": "refund",
                    "status": "failure",
                    "amount": decimal_text(spec.fact("failed")),
                    "currency": payment.currency,
                }
            )
        payload = {
            "id": refund,
            "order_id": int(order_id),
            "created_at": _when(e),
            "transactions": transactions,
        }
        return "shopify", spec.type, str(refund), event_id, payload
    payload = {
        "id": int(order_id),
        "name": f"#{order_id[-4:]}",
        "currency": payment.currency,
        "total_price": "free" if spec.role == POISON else decimal_text(payment.amount),
        "financial_status": spec.fact("financial", "paid"),
        "cancelled_at": _when(e) if spec.type == "orders/cancelled" else None,
        "created_at": events.T0.isoformat(),
    }
    return "shopify", spec.type, order_id, event_id, payload


# ------------------------------------------------------------------ the oracle

STATUS_RANK = {"pending": 0, "processing": 1, "failed": 2, "canceled": 3, "succeeded": 4}
CAPTURED = {"succeeded", "partially_refunded", "refunded"}
STRIPE_REPORTS = {
    "payment_intent.created": "pending",
    "payment_intent.requires_action": "pending",
    "payment_intent.processing": "processing",
    "payment_intent.amount_capturable_updated": "processing",
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "payment_intent.canceled": "canceled",
}
SQUARE_REPORTS = {
    "PENDING": "pending",
    "APPROVED": "processing",
    "COMPLETED": "succeeded",
    "FAILED": "failed",
    "CANCELED": "canceled",
}
SHOPIFY_REPORTS = {
    "pending": "pending",
    "authorized": "processing",
    "partially_paid": "processing",
    "paid": "succeeded",
    "partially_refunded": "succeeded",
    "refunded": "succeeded",
    "voided": "canceled",
}
MERCADOPAGO_REPORTS = {
    "pending": "pending",
    "authorized": "processing",
    "in_process": "processing",
    "in_mediation": "processing",
    "approved": "succeeded",
    "refunded": "succeeded",
    "charged_back": "succeeded",
    "rejected": "failed",
    "cancelled": "canceled",
}


def minor(value: object) -> int:
    """A decimal amount ("12.34", 12.34) in minor units of a two-decimal currency."""
    return int((Decimal(str(value)) * 100).to_integral_value())


@dataclass
class _Facts:
    """Everything the events report about one payment."""

    provider: str
    order_id: str | None = None
    statuses: set[str] = field(default_factory=set)
    amount: int | None = None
    currency: str | None = None
    captured: list[int] = field(default_factory=list)
    cumulative_refunds: list[int] = field(default_factory=list)
    # refund id → (amount, counted): Square COMPLETED refunds, Shopify successful transactions
    refunds: dict[str, tuple[int, bool]] = field(default_factory=dict)
    refunded_in_full: bool = False  # Mercado Pago refunded/charged_back reporting 0

    def report(
        self,
        *,
        order_id: object = None,
        status: str | None = None,
        amount: int | None = None,
        currency: object = None,
        captured: int | None = None,
    ) -> None:
        if isinstance(order_id, str) and order_id:
            self.order_id = order_id
        if status is not None:
            self.statuses.add(status)
        if amount is not None:
            self.amount = amount
        if isinstance(currency, str):
            self.currency = currency.upper()
        if captured is not None:
            self.captured.append(captured)


@dataclass(frozen=True)
class Expected:
    payments: dict[tuple[str, str], dict[str, Any]]
    orders: dict[str, dict[str, Any]]
    ledger: dict[tuple[str, str], frozenset[str]]  # allowed statuses
    parked: frozenset[tuple[str, str]]
    counted: dict[str, int]


def _payment_facts(world: World) -> dict[tuple[str, str], _Facts]:
    facts: dict[tuple[str, str], _Facts] = {}

    def of(provider: str, payment_id: str) -> _Facts:
        return facts.setdefault((provider, payment_id), _Facts(provider))

    for delivery in world.deliveries:
        if delivery.spec.role != GENUINE:
            continue
        payload, kind = delivery.payload, delivery.envelope.event_type
        provider = delivery.envelope.provider
        if provider == "stripe":
            obj = payload["data"]["object"]
            metadata = obj.get("metadata") or {}
            if kind in STRIPE_REPORTS:
                status = STRIPE_REPORTS[kind]
                of("stripe", obj["id"]).report(
                    order_id=metadata.get("order_id"),
                    status=status,
                    amount=obj["amount"],
                    currency=obj["currency"],
                    captured=obj["amount_received"] if status == "succeeded" else None,
                )
            elif kind == "charge.refunded":
                found = of("stripe", obj["payment_intent"] or obj["id"])
                found.report(
                    order_id=metadata.get("order_id"),
                    amount=obj["amount"],
                    currency=obj["currency"],
                    captured=obj["amount_captured"],
                )
                found.cumulative_refunds.append(obj["amount_refunded"])
            elif kind == "checkout.session.completed":
                paid = obj["payment_status"] == "paid"
                of("stripe", obj["payment_intent"]).report(
                    order_id=obj.get("client_reference_id") or metadata.get("order_id"),
                    status="succeeded" if paid else "processing",
                    amount=obj["amount_total"],
                    currency=obj["currency"],
                    captured=obj["amount_total"] if paid else None,
                )
        elif provider == "square":
            data = payload["data"]["object"]
            if "payment" in data:
                body = data["payment"]
                status = SQUARE_REPORTS[body["status"]]
                found = of("square", body["id"])
                found.report(
                    order_id=body.get("reference_id"),
                    status=status,
                    amount=body["amount_money"]["amount"],
                    currency=body["amount_money"]["currency"],
                    captured=body["amount_money"]["amount"] if status == "succeeded" else None,
                )
                if "refunded_money" in body:
                    found.cumulative_refunds.append(body["refunded_money"]["amount"])
            else:
                refund = data["refund"]
                found = of("square", refund["payment_id"])
                amount, counted = found.refunds.get(refund["id"], (0, False))
                completed = refund["status"] == "COMPLETED"
                found.refunds[refund["id"]] = (
                    refund["amount_money"]["amount"] if completed or not counted else amount,
                    counted or completed,
                )
        elif provider == "shopify":
            if kind == "refunds/create":
                found = of("shopify", str(payload["order_id"]))
                total = sum(
                    minor(t["amount"])
                    for t in payload["transactions"]
                    if t.get("kind") == "refund" and t.get("status") == "success"
                )
                found.refunds[str(payload["id"])] = (total, True)
            else:
                financial = payload.get("financial_status")
                reported = SHOPIFY_REPORTS.get(str(financial))
                total = minor(payload["total_price"])
                of("shopify", str(payload["id"])).report(
                    order_id=str(payload["id"]),
                    status=reported,
                    amount=total,
                    currency=payload["currency"],
                    captured=total
                    if financial in ("paid", "partially_refunded", "refunded")
                    else None,
                )
        else:
            fetched = world.mercadopago[str(payload["data"]["id"])]
            status = MERCADOPAGO_REPORTS[fetched["status"]]
            amount = minor(fetched["transaction_amount"])
            found = of("mercadopago", str(fetched["id"]))
            found.report(
                order_id=fetched.get("external_reference"),
                status=status,
                amount=amount,
                currency=fetched["currency_id"],
                captured=amount
                if fetched["status"] in ("approved", "refunded", "charged_back")
                else None,
            )
            found.cumulative_refunds.append(minor(fetched["transaction_amount_refunded"] or 0))
            found.refunded_in_full = fetched["status"] in ("refunded", "charged_back")
    return facts


def _payment_row(facts: _Facts) -> dict[str, Any]:
    captured = max(facts.captured) if facts.captured else None
    amount = facts.amount or 0
    money = captured if captured is not None else amount
    largest = max(facts.cumulative_refunds, default=0)
    counted_refunds = sum(amount for amount, counted in facts.refunds.values() if counted)
    if facts.provider == "stripe":
        refunded = largest
    elif facts.provider == "square":
        refunded = max(counted_refunds, largest)
    elif facts.provider == "shopify":
        refunded = counted_refunds
    else:
        refunded = largest or (money if facts.refunded_in_full else 0)
    if refunded > 0:
        status = "refunded" if money > 0 and refunded >= money else "partially_refunded"
    elif facts.statuses:
        status = max(facts.statuses, key=STATUS_RANK.__getitem__)
    else:
        status = "pending"
    return {
        "status": status,
        "amount": amount,
        "captured_amount": captured,
        "currency": facts.currency,
        "amount_refunded": refunded,
        "order_id": facts.order_id,
    }


def _order_status(
    amount: int, currency: str, canceled: bool, payments: Sequence[dict[str, Any]]
) -> tuple[str, int, int]:
    captured = [p for p in payments if p["status"] in CAPTURED]

    def money(p: dict[str, Any]) -> int:
        return int(p["captured_amount"] if p["captured_amount"] is not None else p["amount"])

    def known(p: dict[str, Any]) -> bool:
        return p["captured_amount"] is not None or p["amount"] > 0

    paid = sum(money(p) for p in captured)
    refunded = sum(p["amount_refunded"] for p in payments)
    if canceled:
        status = "canceled"
    elif paid > 0 and refunded >= paid:
        status = "refunded"
    elif (
        captured
        and all(known(p) for p in captured)
        and (
            paid != amount
            or any((p["currency"] or "").upper() != currency.upper() for p in captured)
        )
    ):
        status = "amount_mismatch"
    elif refunded > 0:
        status = "partially_refunded"
    elif any(known(p) for p in captured):
        status = "paid"
    elif (
        payments
        and all(p["status"] in ("failed", "canceled") for p in payments)
        and any(p["status"] == "failed" for p in payments)
    ):
        status = "payment_failed"
    else:
        status = "pending"
    return status, paid, refunded


def expected(world: World) -> Expected:
    """The rows the events alone imply (issue 10's rules), after a full drain."""
    payments = {key: _payment_row(facts) for key, facts in _payment_facts(world).items()}
    case = world.case
    orders: dict[str, dict[str, Any]] = {}
    existing: dict[str, tuple[int, str]] = {
        world.order_ids[k]: (order.amount, order.currency)
        for k, order in enumerate(case.orders)
        if order.saved != "never"
    }
    for p, payment in enumerate(case.payments):
        if payment.provider == "shopify" and any(
            e.payment == p and e.role == GENUINE and e.type.startswith("orders/")
            for e in case.events
        ):
            existing[world.payment_ids[p]] = (payment.amount, payment.currency)
    canceled = {
        str(d.payload["id"])
        for d in world.deliveries
        if d.spec.role == GENUINE and d.envelope.event_type == "orders/cancelled"
    }
    for order_id, (amount, currency) in existing.items():
        mine = [row for row in payments.values() if row["order_id"] == order_id]
        status, paid, refunded = _order_status(amount, currency, order_id in canceled, mine)
        orders[order_id] = {
            "status": status,
            "amount": amount,
            "currency": currency.upper(),
            "paid_amount": paid,
            "refunded_amount": refunded,
        }
    ledger: dict[tuple[str, str], frozenset[str]] = {}
    for d in world.deliveries:
        if d.spec.role == POISON:
            allowed = {"parked"}
        elif d.spec.role == COUNTED:
            allowed = {"applied"}
        elif d.spec.role == UNHANDLED:
            allowed = {"ignored"}
        elif world.order_id_of(d.spec.payment) in existing:
            allowed = {"applied", "stale"}
        else:
            allowed = {"orphaned", "stale"}
            if d.envelope.provider == "square" and d.envelope.event_type.startswith("refund."):
                allowed.add("applied")  # names no order: nothing to wait for
        ledger[d.key] = frozenset(allowed)
    return Expected(
        payments=payments,
        orders=orders,
        ledger=ledger,
        parked=frozenset(d.key for d in world.deliveries if d.spec.role == POISON),
        counted={d.envelope.event_id: 1 for d in world.deliveries if d.spec.role == COUNTED},
    )


# ------------------------------------------------------------------ the harness


class Crash(BaseException):
    """The Lambda process dies here: nothing catches it, nothing after it runs."""


@dataclass
class Faults:
    """Crashes to come: each armed point fires at its `after`-th reach from now on (in
    this invocation or a later one), once. The patched code calls `reached`."""

    pending: dict[str, int] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)

    def arm(self, point: str, after: int = 1) -> None:
        self.pending[point] = after

    def disarm(self) -> None:
        self.pending.clear()

    def reached(self, point: str) -> None:
        left = self.pending.get(point)
        if left is None:
            return
        if left > 1:
            self.pending[point] = left - 1
            return
        del self.pending[point]
        self.fired.append(point)
        raise Crash(point)


CONSUMER_APPLICATION = "hookline-consumer"
RECONCILER_APPLICATION = "hookline-reconciler"
COUNTED_TABLE = "model_counted"
MAX_DRAIN_ROUNDS = 15
MAX_DRAIN_BATCHES = 60
STEP_DRAIN_BATCHES = 15


@dataclass(repr=False)
class Harness:
    """The pipeline of tests/conftest.py with crash points, outages, and a full drain.

    The consumer and the reconciler each reach PostgreSQL through a TCP proxy of
    their own, so the database can fail for the consumer only (`consumer_database`:
    connection limit, statement timeouts) or for both (`database`).
    """

    pipeline: Pipeline
    reconcile_handler: Callable[[dict[str, Any]], dict[str, Any]]
    db: psycopg.Connection[Any]
    sandbox: ProviderSandbox
    consumer_proxy: TcpProxy
    reconciler_proxy: TcpProxy
    consumer_url: str
    reconciler_url: str
    set_env: Callable[[str, str], None]
    faults: Faults = field(default_factory=Faults)
    down: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(DEPENDENCIES, False))
    proxies_up: dict[str, bool] = field(
        default_factory=lambda: {"consumer": True, "reconciler": True}
    )
    table_up: bool = True
    examples: int = 0
    log: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return "Harness(consumer and reconciler Lambda handlers, moto, PostgreSQL)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    # -- the stack

    @property
    def sqs(self) -> Any:
        return self.pipeline.stack.sqs

    @property
    def queue_url(self) -> str:
        return self.pipeline.stack.queue_url

    @property
    def dlq_url(self) -> str:
        return self.pipeline.stack.dlq_url

    @property
    def table(self) -> str:
        return self.pipeline.stack.idempotency_table

    def _moto_queues(self) -> Iterator[Any]:
        backend = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        for url in (self.queue_url, self.dlq_url):
            yield backend.get_queue(url.rsplit("/", 1)[-1])

    def time_passes(self) -> None:
        """Longer than any visibility timeout and any Lambda timeout goes by."""
        for queue in self._moto_queues():
            for message in queue._messages:
                message.visible_at = 0.0
            queue._pending_messages.clear()
        self._expire_in_progress()

    def _expire_in_progress(self) -> None:
        dynamodb = self.pipeline.stack.dynamodb
        try:
            items = dynamodb.scan(TableName=self.table)["Items"]
        except ClientError:
            return  # the table is down: nothing to expire
        for item in items:
            if item.get("status", {}).get("S") == "INPROGRESS" and (
                "in_progress_expiration" in item
            ):
                dynamodb.update_item(
                    TableName=self.table,
                    Key={"id": item["id"]},
                    UpdateExpression="SET in_progress_expiration = :past",
                    ExpressionAttributeValues={":past": {"N": "0"}},
                )

    def queue_counts(self) -> dict[str, int]:
        """Messages on each queue, visible, in flight or delayed."""
        queue, dlq = self._moto_queues()
        return {"queue": len(queue._messages), "dlq": len(dlq._messages)}

    # -- containers

    def _terminate(self, application: str) -> None:
        self.db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            (application,),
        )

    def new_consumer(self) -> None:
        """The next invocation gets a fresh container (the old one died, its connection
        with it). Built on that invocation, as a cold start is."""
        consumer.cache_clear()
        self._terminate(CONSUMER_APPLICATION)

    def new_reconciler(self) -> None:
        reconciler.cache_clear()
        self._terminate(RECONCILER_APPLICATION)

    # -- dependencies

    def _proxy(self, name: str, proxy: TcpProxy, up: bool) -> None:
        if self.proxies_up[name] == up:
            return
        if up:
            proxy.start()
        else:
            proxy.stop()
        self.proxies_up[name] = up

    def _idempotency_table(self, up: bool) -> None:
        """Delete the table (an outage), or create it again from template.yaml's properties."""
        if self.table_up == up:
            return
        dynamodb = self.pipeline.stack.dynamodb
        if not up:
            dynamodb.delete_table(TableName=self.table)
        else:
            document = template.load()
            resolver = resources.Resources("model", "us-east-1", {}).resolver(document)
            arguments, ttl = template.dynamodb_table(document, "IdempotencyTable", resolver)
            dynamodb.create_table(TableName=self.table, **arguments)
            if ttl is not None:
                dynamodb.update_time_to_live(TableName=self.table, TimeToLiveSpecification=ttl)
        self.table_up = up

    def outage(self, dependency: str, down: bool) -> None:
        self.down[dependency] = down
        self._apply_outages()

    def restore(self) -> None:
        self.down = dict.fromkeys(DEPENDENCIES, False)
        self._apply_outages()

    def _apply_outages(self) -> None:
        database_down = self.down["database"]
        self._proxy(
            "consumer",
            self.consumer_proxy,
            not (database_down or self.down["consumer_database"]),
        )
        self._proxy("reconciler", self.reconciler_proxy, not database_down)
        self._idempotency_table(not self.down["dynamodb"])
        self.sandbox.down = self.down["mercadopago"]

    # -- one example

    def reset(self, world: World) -> None:
        """A clean system for `world`: empty queues and tables, every dependency up.

        The containers stay warm (as between two bursts of traffic). Idempotency
        records are harmless across examples (every example has ids of its own) but
        make each scan slower: the table is emptied every tenth example.
        """
        self.faults.disarm()
        self.faults.fired.clear()
        self.log = []
        self.errors = []
        self.restore()
        self.examples += 1
        if self.examples % 10 == 0:
            self._idempotency_table(False)
            self._idempotency_table(True)
        for queue in self._moto_queues():
            queue._messages = []
            queue._pending_messages = set()
        tables = [
            sql.Identifier(row["schemaname"], row["tablename"])
            for row in self.db.execute(
                "SELECT schemaname, tablename FROM pg_tables"
                " WHERE (schemaname = current_schema() AND tablename <> 'schema_migrations')"
                " OR (schemaname = 'public' AND tablename = %s)",
                (COUNTED_TABLE,),
            ).fetchall()
        ]
        self.db.execute("SET lock_timeout = '10s'")  # a stuck example fails, never hangs
        self.db.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(tables)))
        self.sandbox.payments.clear()
        self.sandbox.payments.update(world.mercadopago)
        self.sandbox.failures.clear()
        for k, order in enumerate(world.case.orders):
            if order.saved == "before":
                insert_order(self.db, world.order_ids[k], order.amount, order.currency)

    def run(self, world: World) -> None:
        self.reset(world)
        for step in world.case.schedule:
            self.step(world, step)
        self.drain()

    def step(self, world: World, step: Step) -> None:
        self.log.append(repr(step))
        if isinstance(step, Send):
            self.send(world.deliveries[step.event].envelope, step.copy, step.new_id)
        elif isinstance(step, Invoke):
            self.invoke(step)
        elif isinstance(step, Drain):
            self.drain_consumer(STEP_DRAIN_BATCHES, stop_without_progress=True)
        elif isinstance(step, Poll):
            for _ in range(step.times):
                if self.invoke(Invoke()) is None:
                    break
        elif isinstance(step, Reconcile):
            self.reconcile(crash=step.crash)
        elif isinstance(step, ShopSavesOrder):
            order = world.case.orders[step.order]
            insert_order(self.db, world.order_ids[step.order], order.amount, order.currency)
        elif isinstance(step, Outage):
            self.outage(step.dependency, step.down)
        else:
            self.dead_letter(world.deliveries[step.event].envelope, step.redrives)

    def send(self, envelope: Envelope, copy: int = 0, new_id: bool = False) -> None:
        if copy == 0 or not new_id:
            self.pipeline.send([envelope])  # SQS drops it if the first copy is still there
            return
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=envelope.to_message_body(),
            MessageDeduplicationId=f"{envelope.deduplication_id[:100]}-copy{copy}",
            MessageGroupId=envelope.group_id,
        )

    def dead_letter(self, envelope: Envelope, redrives: int = 0) -> None:
        attributes = (
            {REDRIVES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(redrives)}}
            if redrives
            else {}
        )
        self.sqs.send_message(
            QueueUrl=self.dlq_url,
            MessageBody=envelope.to_message_body(),
            MessageDeduplicationId=f"{envelope.deduplication_id[:100]}-dead",
            MessageGroupId=envelope.group_id,
            MessageAttributes=attributes,
        )

    def invoke(self, step: Invoke) -> dict[str, Any] | None:
        """One invocation as the event source mapping makes it; None if nothing to receive.

        Returns the handler's answer, or {"crashed": point} when the process died.
        """
        if step.crash is not None:
            self.faults.arm(step.crash, step.after)
        messages = self.pipeline.receive(step.batch)
        if not messages:
            return None
        context = FakeLambdaContext(function_name="hookline-ConsumerFunction", timeout_seconds=30.0)
        event = sqs_event(messages, self.pipeline.stack.queue_arn, "us-east-1")
        try:
            response = self.pipeline.handler(event, context)
            self.faults.reached("before_delete")
        except Crash as crash:
            self._consumer_died()
            return {"crashed": str(crash)}
        except Exception as error:  # noqa: BLE001 - a function error: the batch comes back
            self.error(f"the consumer raised instead of answering: {describe(error)}")
            return {"received": len(messages), "failed": len(messages)}
        ids = [m["MessageId"] for m in messages]
        failed = failed_message_ids(Invocation(context.aws_request_id, response), ids, True)
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return {**response, "received": len(messages), "failed": len(failed)}

    def _consumer_died(self) -> None:
        self.log.append("  (consumer crashed; a new container follows)")
        self.new_consumer()
        self.time_passes()

    def drain_consumer(self, limit: int, *, stop_without_progress: bool = False) -> None:
        for _ in range(limit):
            answer = self.invoke(Invoke(10))
            if answer is None:
                return
            if "crashed" in answer:
                continue  # a new container takes over, its messages are back
            if stop_without_progress and answer["failed"] == answer["received"]:
                return
        if not stop_without_progress:
            self.error(f"the consumer did not drain in {limit} batches")

    def reconcile(self, *, crash: bool = False) -> dict[str, Any] | None:
        if crash:
            self.faults.arm(RECONCILER_CRASH)
        # The reconciler's own way to PostgreSQL (read when its container starts).
        self.set_env("DATABASE_URL", self.reconciler_url)
        try:
            return self.reconcile_handler({"action": "reconcile"})
        except Crash:
            self.log.append("  (reconciler crashed; a new container follows)")
            self.new_reconciler()
            self.time_passes()
            return None
        except Exception as error:  # noqa: BLE001 - principle 3: nothing stops a run
            self.error(f"a reconciler run raised: {describe(error)}")
            return None
        finally:
            self.set_env("DATABASE_URL", self.consumer_url)

    def drain(self) -> int:
        """Everything restored, then consumer drains and reconciler runs until both queues
        are empty and nothing is in flight. Returns the rounds it took (0: never drained,
        which is an error of the run)."""
        self.restore()
        answer = None
        for round_ in range(1, MAX_DRAIN_ROUNDS + 1):
            self.time_passes()
            self.drain_consumer(MAX_DRAIN_BATCHES)
            # Done once a whole reconciler run (redrive, then orphan settling) went
            # through after the consumer's last work, and left nothing to do.
            answer = self.reconcile()
            clean = answer is not None and answer.get("ok") is True
            if clean and not any(self.queue_counts().values()):
                return round_
        self.error(
            f"not drained after {MAX_DRAIN_ROUNDS} rounds: {self.queue_counts()}"
            f" (queue: {self._bodies(self.queue_url)}; dlq: {self._bodies(self.dlq_url)});"
            f" last reconciler answer: {answer}"
        )
        return 0

    def error(self, text: str) -> None:
        """Something the run did that no correct system does (reported with the rows)."""
        if text not in self.errors:
            self.errors.append(text)

    def _bodies(self, url: str) -> list[str]:
        """Event ids of every message on a queue, in flight or not (from moto's backend)."""
        name = url.rsplit("/", 1)[-1]
        queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_queue(name)
        found = []
        for message in queue._messages:
            try:
                found.append(str(json.loads(message.body)["event_id"]))
            except (ValueError, KeyError, TypeError):
                found.append("(not an envelope)")
        return found

    # -- comparing

    def captured_amount_column(self) -> bool:
        row = self.db.execute(
            "SELECT count(*) AS n FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'payments'"
            " AND column_name = 'captured_amount'"
        ).fetchone()
        return bool(row and row["n"])

    def disagreements(self, world: World, *, captured_amount: bool = True) -> list[str]:
        """Every way the rows differ from the oracle (empty: they agree)."""
        return list(self.errors) + disagreements(self.db, world, captured_amount=captured_amount)


def disagreements(
    db: psycopg.Connection[Any],
    world: World,
    *,
    captured_amount: bool = True,
    counted: bool = True,
) -> list[str]:
    """Every way the rows on `db` differ from the oracle (empty: they agree).

    `counted`: check the counting handler's table too (the harness registers it;
    a stack running the template's handlers has none).
    """
    want = expected(world)
    problems: list[str] = []
    fields = ["status", "amount", "currency", "amount_refunded", "order_id"]
    if captured_amount:
        fields.append("captured_amount")
    names = {key: f"p{p}" for p, key in enumerate(_payment_keys(world))}
    rows = {
        (r["row"]["provider"], r["row"]["provider_payment_id"]): r["row"]
        for r in db.execute("SELECT to_jsonb(p) AS row FROM payments p").fetchall()
    }
    for key in sorted(set(rows) | set(want.payments)):
        label = f"payment {names.get(key, '?')} {key[0]}/{key[1]}"
        if key not in rows:
            problems.append(f"{label}: no row; expected {want.payments[key]}")
        elif key not in want.payments:
            problems.append(f"{label}: unexpected row {rows[key]}")
        else:
            got = {name: rows[key].get(name) for name in fields}
            exp = {name: want.payments[key][name] for name in fields}
            if got != exp:
                problems.append(f"{label}: got {_diff(got, exp)}")
    order_names = {order_id: f"o{k}" for k, order_id in enumerate(world.order_ids)}
    order_rows = {
        r["id"]: {**r, "currency": str(r["currency"]).upper()}
        for r in db.execute(
            "SELECT id, status, amount, currency, paid_amount, refunded_amount FROM orders"
        ).fetchall()
    }
    for order_id in sorted(set(order_rows) | set(want.orders)):
        label = f"order {order_names.get(order_id, 'shopify')} {order_id}"
        if order_id not in order_rows:
            problems.append(f"{label}: no row; expected {want.orders[order_id]}")
        elif order_id not in want.orders:
            problems.append(f"{label}: unexpected row {order_rows[order_id]}")
        else:
            got = {k: v for k, v in order_rows[order_id].items() if k != "id"}
            if got != want.orders[order_id]:
                problems.append(f"{label}: got {_diff(got, want.orders[order_id])}")
    event_names = {d.key: f"e{d.index}" for d in world.deliveries}
    ledger = {
        (r["provider"], r["event_id"]): r
        for r in db.execute(
            "SELECT provider, event_id, status, last_error FROM webhook_events"
        ).fetchall()
    }
    for key in sorted(set(ledger) | set(want.ledger)):
        label = f"ledger {event_names.get(key, '?')} {key[0]}/{key[1]}"
        if key not in ledger:
            problems.append(f"{label}: no row; expected one of {sorted(want.ledger[key])}")
        elif key not in want.ledger:
            problems.append(f"{label}: unexpected row {ledger[key]['status']}")
        elif ledger[key]["status"] not in want.ledger[key]:
            error = ledger[key]["last_error"]
            problems.append(
                f"{label}: {ledger[key]['status']}, expected one of"
                f" {sorted(want.ledger[key])}{f' (last_error: {error})' if error else ''}"
            )
    parked = db.execute(
        "SELECT provider, event_id, reason, resolved_at FROM parked_events"
    ).fetchall()
    open_parked = [(r["provider"], r["event_id"]) for r in parked if r["resolved_at"] is None]
    for r in parked:
        key = (r["provider"], r["event_id"])
        if key not in want.parked:
            problems.append(
                f"parked {event_names.get(key, '?')} {key[0]}/{key[1]}"
                f" ({r['reason']}): only poison may be parked"
            )
    for key in sorted(want.parked):
        if open_parked.count(key) != 1:
            problems.append(
                f"poison {event_names.get(key, '?')} {key[0]}/{key[1]}:"
                f" {open_parked.count(key)} open parked rows, expected 1"
            )
    if counted:
        got_counted = {
            r["event_id"]: r["n"]
            for r in db.execute(
                f"SELECT event_id, n FROM public.{COUNTED_TABLE}"  # noqa: S608 - a constant
            ).fetchall()
        }
        if got_counted != want.counted:
            problems.append(f"counted events: got {got_counted}, expected {want.counted}")
    return problems


def _payment_keys(world: World) -> list[tuple[str, str]]:
    return [
        (payment.provider, world.payment_ids[p]) for p, payment in enumerate(world.case.payments)
    ]


def _diff(got: dict[str, Any], want: dict[str, Any]) -> str:
    return ", ".join(
        f"{name}={got.get(name)!r} (expected {want.get(name)!r})"
        for name in want
        if got.get(name) != want.get(name)
    )


def run_case(
    harness: Harness, case: Case, *, captured_amount: bool | None = None
) -> tuple[World, list[str]]:
    """Run `case` from a clean state; the world it ran and its disagreements with the oracle."""
    world = materialize(case)
    harness.run(world)
    if captured_amount is None:
        captured_amount = harness.captured_amount_column()
    return world, harness.disagreements(world, captured_amount=captured_amount)


def explain(harness: Harness, world: World, problems: Sequence[str]) -> str:
    """The assertion message: each disagreement, the crashes that fired, the concrete ids."""
    lines = ["the rows disagree with the oracle:", *("  " + p for p in problems)]
    lines.append(f"crashes that fired: {harness.faults.fired or 'none'}")
    lines.append(world.legend())
    return "\n".join(lines)
