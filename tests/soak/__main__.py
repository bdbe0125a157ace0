"""`make soak`: the whole pipeline under load and faults, checked against an oracle.

    .venv/bin/python -m tests.soak [--deliveries 10000] [--rate 100] [--faults all]

Writes the report and the chart to docs/soak/ (--out), and the run's folder
(the stack's log) to .soak/. Exits 1 when the database disagrees with the oracle.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from tests.soak import faults, report
from tests.soak.run import ROOT, Config, run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="deliveries per second")
    parser.add_argument("--senders", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--faults",
        default="all",
        help=f"comma-separated, in order, from {', '.join(faults.FAULTS)}; 'all' or 'none'",
    )
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--database-url", help="a server to create the soak's database on")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "soak")
    args = parser.parse_args(argv)
    chosen = {"all": list(faults.FAULTS), "none": []}.get(
        args.faults, [name for name in args.faults.split(",") if name]
    )
    unknown = set(chosen) - set(faults.FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    work = ROOT / ".soak"
    shutil.rmtree(work, ignore_errors=True)
    outcome = run(
        Config(
            deliveries=args.deliveries,
            rate=args.rate,
            senders=args.senders,
            seed=args.seed,
            faults=chosen,
            drain_timeout=args.drain_timeout,
            database_url=args.database_url,
            work_dir=work,
        )
    )
    args.out.mkdir(parents=True, exist_ok=True)
    text = report.text(outcome)
    (args.out / "report.txt").write_text(text + "\n")
    (args.out / "summary.json").write_text(json.dumps(report.summary(outcome), indent=2) + "\n")
    report.chart(outcome, args.out / "soak.png")
    print(text)
    print(f"\nreport and chart in {args.out}; the stack's log: {outcome.stack_log}")
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
