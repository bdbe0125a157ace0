"""The short soak (`make soak` at a tenth of the size, one fault): ~1,000 deliveries of
every provider over loopback HTTP into `hookline local`, duplicates, forgeries,
poison, late orders and mismatches among them, PostgreSQL cut and restored while
they flow; at the end the database agrees with an oracle computed only from what
was sent. The full soak is `make soak` (docs/performance.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hookline.simulate.signing import PROVIDERS

from tests.soak import report
from tests.soak.run import Config, run
from tests.soak.workload import NOT_YET_SOAKED
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.e2e


def test_a_thousand_deliveries_through_a_database_cut_agree_with_the_oracle(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    outcome = run(
        Config(
            deliveries=1_000,
            rate=100.0,
            seed=14,
            faults=["postgres"],
            drain_timeout=300.0,
            database_url=postgres.admin_url,
            work_dir=tmp_path,
            quiet=True,
        )
    )
    text = report.text(outcome)
    assert outcome.passed, f"{text}\n(the stack's log: {outcome.stack_log})"
    # The fault happened while deliveries flowed, and every kind of delivery was sent.
    assert [fault.name for fault in outcome.injected] == ["postgres"]
    assert outcome.injected[0].ended < outcome.record.seconds
    plan = report.summary(outcome)["plan"]
    assert set(plan["by_provider"]) == set(PROVIDERS) - set(NOT_YET_SOAKED)
    for kind in ("forged", "poison", "duplicates", "late_orders", "mismatched_orders"):
        assert plan[kind] > 0, kind
    chart = tmp_path / "soak.png"
    report.chart(outcome, chart)
    assert chart.read_bytes().startswith(b"\x89PNG")
