"""One row of `make bench`'s table: a figure of ours beside its floor or peer.

Every bench script exposes `rows() -> list[Row]` (measured in one run, ours and
the floor alternating) and prints them with `print_table` when run on its own;
bench/run.py gathers them all into one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    figure: str  # what is measured, e.g. "receiver warm request"
    ours: float
    floor: float  # the floor or peer, measured in the same run
    unit: str  # "us", "ms", "per event", "deliveries/s", ...
    goal: str  # e.g. "<= 1.0x"
    floor_name: str  # what the floor is, e.g. "hand-written Powertools receiver"
    # True when a bigger ratio is better (a rate); the ratio is ours / floor either way.
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        return self.ours / self.floor if self.floor else float("inf")


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(rows: Sequence[Row]) -> str:
    header = ("figure", "ours", "floor / peer", "unit", "ratio", "goal")
    cells = [
        (
            row.figure,
            _number(row.ours),
            f"{_number(row.floor)} ({row.floor_name})",
            row.unit,
            f"{row.ratio:.2f}x",
            row.goal,
        )
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in (header, *cells)) for i in range(len(header))]
    lines = [
        " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True))
        for line in (header, *cells)
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def print_table(rows: Sequence[Row]) -> None:
    print(format_table(rows))
