"""`make bench`: every speed goal beside its floor or peer, measured in one run, one table.

    .venv/bin/python bench/run.py [--only receiver,cold,consumer,local_stack] [--markdown]

Each script measures ours and its floor alternately in the same run (a shared
machine's noise hits both alike) and can also run on its own
(`.venv/bin/python bench/receiver.py`). Nothing here asserts: the ratios are
the result; docs/performance.md holds a run's table.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.table import Row, format_table  # noqa: E402

# In the order of the table: the receiver, cold starts, the consumer, the local stack.
SCRIPTS = ("receiver", "cold", "consumer", "local_stack")


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses look their module up while it is being run.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def markdown(rows: list[Row]) -> str:
    lines = [
        "| figure | ours | floor / peer | ratio | goal |",
        "| --- | ---: | --- | ---: | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.figure} | {row.ours:,.2f} {row.unit} | {row.floor:,.2f} {row.unit}"
            f" ({row.floor_name}) | {row.ratio:.2f}x | {row.goal} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    parser.add_argument("--only", help="comma-separated: " + ", ".join(SCRIPTS))
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SCRIPTS)
    rows: list[Row] = []
    for name in chosen:
        started = time.monotonic()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        rows += _load(name).rows()
        print(f"bench: {name} took {time.monotonic() - started:.0f}s", file=sys.stderr)
    print(
        f"hookline bench, {time.strftime('%Y-%m-%d')}, {platform.machine()},"
        f" python {platform.python_version()}"
    )
    print(format_table(rows))
    if args.markdown:
        print()
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
