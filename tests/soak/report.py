"""The soak's one-screen report and its chart of throughput and latency over time."""

from __future__ import annotations

import math
import platform
from collections import Counter
from pathlib import Path
from typing import Any

from tests.soak.run import Outcome, timestamp
from tests.soak.workload import describe

FINAL = ("applied", "stale", "ignored")


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with `fraction` of them at or below.

    (int(fraction * n) was a rank too high: the p99 of 100 values was their maximum.)
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    # Rounded first: 0.07 * 100 is 7.000000000000001, whose ceiling is a rank too high.
    rank = math.ceil(round(fraction * len(ordered), 9))
    return ordered[min(len(ordered), max(1, rank)) - 1]


def _receive_ms(outcome: Outcome) -> list[float]:
    """Latency of every answered request (retries and refusals included)."""
    return [
        a.latency_ms for d in outcome.record.delivered for a in d.attempts if a.status is not None
    ]


def _end_to_end(outcome: Outcome) -> list[tuple[float, float]]:
    """(processed at, seconds from receipt to commit) of each event that went straight
    through: not one waiting for the shop's late order, not poison."""
    late = outcome.workload.late_payment_keys()
    parked = set(outcome.workload.expected().parked)
    return [
        (row["processed"] - outcome.wall_start, row["processed"] - row["received"])
        for row in outcome.ledger
        if row["status"] in FINAL
        and row["processed"] is not None
        and (row["provider"], row["event_id"]) not in late | parked
    ]


def summary(outcome: Outcome) -> dict[str, Any]:
    record = outcome.record
    attempts = [a for d in record.delivered for a in d.attempts]
    answers = Counter(str(a.status) if a.status is not None else "no answer" for a in attempts)
    receive = _receive_ms(outcome)
    e2e = [seconds for _, seconds in _end_to_end(outcome)]
    accepted = sum(1 for d in record.delivered if d.accepted)
    statuses = Counter(row["status"] for row in outcome.ledger)
    return {
        "plan": describe(outcome.workload),
        "requests": len(attempts),
        "answers": dict(sorted(answers.items())),
        "accepted_deliveries": accepted,
        "send_seconds": round(record.seconds, 1),
        "accepted_per_second": round(accepted / record.seconds, 1) if record.seconds else 0.0,
        "receive_ms": {
            name: round(percentile(receive, q), 1)
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        },
        "end_to_end_s": {
            name: round(percentile(e2e, q), 2)
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        },
        "ledger": dict(sorted(statuses.items())),
        "drained_after_s": round(outcome.drained_after, 1)
        if outcome.drained_after is not None
        else None,
        "faults": [
            {
                "fault": f.name,
                "at_s": round(f.started, 1),
                "until_s": round(f.ended, 1),
                "what": f.detail,
                "effect": f.effect,
            }
            for f in outcome.injected
        ],
        "mismatches": len(outcome.problems),
    }


def text(outcome: Outcome) -> str:
    s = summary(outcome)
    plan = s["plan"]
    config = outcome.config
    lines = [
        f"hookline soak, {timestamp()}, seed {config.seed}, target {config.rate:.0f}/s"
        f" with {config.senders} senders ({platform.machine()}, {_cpus()} CPUs,"
        f" python {platform.python_version()})",
        "",
        f"planned   {plan['deliveries']} deliveries of {plan['events']} events about"
        f" {plan['payments']} payments and {plan['orders']} orders",
        f"          {plan['duplicates']} duplicates, {plan['forged']} forged,"
        f" {plan['poison']} poison,"
        f" {plan['late_orders']} orders saved late, {plan['mismatched_orders']} mismatched orders",
        "          by provider: " + ", ".join(f"{k} {v}" for k, v in plan["by_provider"].items()),
        f"sent      {s['requests']} requests in {s['send_seconds']}s;"
        f" {s['accepted_deliveries']} deliveries accepted ({s['accepted_per_second']}/s)",
        "answers   " + ", ".join(f"{k}: {v}" for k, v in s["answers"].items()),
        "receive   " + ", ".join(f"{k} {v:.0f} ms" for k, v in s["receive_ms"].items()),
        "end-to-end (received -> committed) "
        + ", ".join(f"{k} {v:.2f} s" for k, v in s["end_to_end_s"].items()),
        "ledger    " + ", ".join(f"{k} {v}" for k, v in s["ledger"].items()),
        f"drained   {s['drained_after_s']} s after the last send"
        if s["drained_after_s"] is not None
        else "drained   NO",
        "faults    " + ("none" if not s["faults"] else f"{len(s['faults'])}, in turn:"),
    ]
    for fault in s["faults"]:
        lines.append(
            f"  {fault['fault']:<13} {fault['at_s']:>6.1f}-{fault['until_s']:.1f} s:"
            f" {fault['what']}"
        )
    verdict = "PASS: the database agrees with the oracle" if outcome.passed else "FAIL"
    lines.append(f"oracle    {len(outcome.problems)} mismatches. {verdict}")
    lines += [f"  {problem}" for problem in outcome.problems[:15]]
    if len(outcome.problems) > 15:
        lines.append(f"  ... and {len(outcome.problems) - 15} more")
    return "\n".join(lines)


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def chart(outcome: Outcome, path: Path) -> None:
    """Accepted and committed events per second, and receive / end-to-end latency, over
    time, with the faults shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    record = outcome.record
    accepted = Counter(
        int(a.at)
        for d in record.delivered
        for a in d.attempts
        if a.status is not None and 200 <= a.status < 300
    )
    points = _end_to_end(outcome)
    committed = Counter(
        int(row["processed"] - outcome.wall_start)
        for row in outcome.ledger
        if row["processed"] is not None
    )
    end = max([*accepted, *committed, 1])
    seconds = list(range(end + 1))
    window = 5
    receive_p99: list[float] = []
    e2e_p99: list[float] = []
    centers: list[float] = []
    for start in range(0, end + 1, window):
        got = [
            a.latency_ms
            for d in record.delivered
            for a in d.attempts
            if a.status is not None and start <= a.at < start + window
        ]
        done = [s for at, s in points if start <= at < start + window]
        centers.append(start + window / 2)
        receive_p99.append(percentile(got, 0.99) if got else float("nan"))
        e2e_p99.append(percentile(done, 0.99) * 1000 if done else float("nan"))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    top.plot(seconds, [accepted.get(t, 0) for t in seconds], label="accepted (2xx) / s", lw=1)
    top.plot(seconds, [committed.get(t, 0) for t in seconds], label="committed / s", lw=1)
    top.set_ylabel("events per second")
    top.legend(loc="upper right")
    bottom.plot(centers, receive_p99, label="receive p99 (ms)", marker=".", lw=1)
    bottom.plot(centers, e2e_p99, label="end-to-end p99 (ms)", marker=".", lw=1)
    bottom.set_yscale("log")
    bottom.set_ylabel("milliseconds (log)")
    bottom.set_xlabel("seconds since the first delivery")
    bottom.legend(loc="upper right")
    for fault in outcome.injected:
        for axis in (top, bottom):
            axis.axvspan(
                fault.started, max(fault.ended, fault.started + 1), alpha=0.15, color="red"
            )
        top.annotate(
            fault.name,
            (fault.started, 0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            rotation=90,
            va="bottom",
        )
    top.set_title(
        f"hookline soak: {len(outcome.workload.sends)} deliveries,"
        f" {len(outcome.problems)} mismatches (faults shaded)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
