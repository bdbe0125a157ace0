"""The soak's workload has the mix `make soak` promises, the same for the same seed."""

from __future__ import annotations

from hookline.simulate.signing import PROVIDERS

from tests.soak.workload import NOT_YET_SOAKED, SaveOrder, Send, Workload, build, describe


def test_the_mix_is_the_one_promised() -> None:
    plan = describe(build(3, 2_000))
    assert abs(plan["deliveries"] - 2_000) <= 10  # whole lifecycles: a few over
    assert plan["duplicates"] == 400  # 20%
    assert plan["forged"] == 40  # 2%
    assert plan["poison"] == 10  # 0.5%
    assert 0.02 <= plan["late_orders"] / plan["orders"] <= 0.08  # ~5%
    assert 1 <= plan["mismatched_orders"] <= plan["orders"] * 0.03  # ~1%
    assert set(plan["by_provider"]) == set(PROVIDERS) - set(NOT_YET_SOAKED)


def test_a_seed_gives_the_same_run_and_retries_follow_their_original() -> None:
    first, again = build(5, 500), build(5, 500)

    # Ids carry a tag unique to each build in a process; everything else repeats.
    def shape(workload: Workload) -> list[tuple[str, str, int, str, int]]:
        return [
            (s.event.provider, s.event.event_type, s.copy, s.forged, len(s.event.body))
            for s in workload.sends
        ]

    assert shape(first) == shape(again)
    seen: set[tuple[str, str]] = set()
    for step in first.steps:
        if isinstance(step, Send) and not step.forged:
            assert step.copy == 0 or step.key in seen, "a retry before its original"
            seen.add(step.key)
    saves = [n for n, step in enumerate(first.steps) if isinstance(step, SaveOrder)]
    assert saves
    assert all(len(first.steps) // 4 < n < len(first.steps) for n in saves)


def test_forgeries_that_name_no_genuine_event_are_known_by_key() -> None:
    workload = build(7, 1_000)
    genuine = {s.key for s in workload.sends if not s.forged}
    assert workload.forged_keys
    assert not workload.forged_keys & genuine
    tampered = [s for s in workload.sends if s.forged == "tampered"]
    assert tampered
    assert all(s.original is not None and s.key in genuine for s in tampered)
    assert all(
        s.original is not None
        and (s.event.body != s.original.body or s.event.headers != s.original.headers)
        for s in tampered
    )
