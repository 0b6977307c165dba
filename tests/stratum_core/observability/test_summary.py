"""Run summaries on hand-made runs: counts per flow, failure rates by error type, p50/p95, tokens and cost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stratum_core.observability import parse_time, summarize
from stratum_core.observability._summary import percentile
from stratum_core.store import RunRecord

T0 = 1_750_000_000.0


def run(
    flow: str, status: str, *, at: float = 0, ms: float | None = None, error: str | None = None, **fields: Any
) -> RunRecord:
    return RunRecord(
        flow=flow,
        status=status,
        plan_hash="h",
        plan_text="",
        input={},
        created_at=T0 + at,
        duration_ms=ms,
        error={"type": error, "message": "x", "step_id": None} if error else None,
        **fields,
    )


RUNS = [
    run("triage", "succeeded", at=1, ms=100, tokens_in=10, tokens_out=5, cost_usd=0.001),
    run("triage", "succeeded", at=2, ms=200, tokens_in=10, tokens_out=5, cost_usd=0.001),
    run("triage", "failed", at=3, ms=300, error="PostconditionFailed", tokens_in=30, tokens_out=0, cost_usd=0.002),
    run("triage", "failed", at=4, ms=400, error="PostconditionFailed"),
    run("triage", "failed", at=5, ms=1000, error="BudgetExceeded", cost_unknown=True),
    run("triage", "paused", at=6),  # not ended: counted, but in no rate or duration
    run("triage", "cancelled", at=7, error="RunCancelled"),
    run("reply", "succeeded", at=8, ms=50, tokens_in=1, tokens_out=1),
    run("reply", "running", at=9),
]


def test_figures_per_flow_and_overall() -> None:
    summary = summarize(RUNS)
    assert list(summary.flows) == ["triage", "reply"]  # most runs first
    triage = summary.flows["triage"]
    assert triage.runs == 7
    assert triage.by_status == {"cancelled": 1, "failed": 3, "paused": 1, "succeeded": 2}
    assert triage.ended == 6
    assert triage.failure_rate == pytest.approx(3 / 6)
    assert [(f.type, f.runs) for f in triage.failures] == [("PostconditionFailed", 2), ("BudgetExceeded", 1)]
    assert [f.rate for f in triage.failures] == pytest.approx([2 / 6, 1 / 6])
    # durations of the ended runs with one: 100, 200, 300, 400, 1000 (the cancelled run has none)
    assert triage.p50_ms == 300
    assert triage.p95_ms == pytest.approx(400 + 0.8 * 600)
    assert (triage.tokens_in, triage.tokens_out, triage.tokens) == (50, 10, 60)
    assert triage.cost_usd == pytest.approx(0.004)
    assert triage.cost_unknown_runs == 1

    overall = summary.overall
    assert overall.runs == 9 and overall.ended == 7
    assert overall.failure_rate == pytest.approx(3 / 7)
    assert overall.p50_ms == 250  # between 200 and 300 of 50, 100, 200, 300, 400, 1000
    assert overall.p95_ms == pytest.approx(400 + 0.75 * 600)
    assert summary.flows["reply"].failure_rate == 0 and summary.flows["reply"].failures == []


def test_runs_outside_the_period_are_left_out() -> None:
    summary = summarize(RUNS, since=T0 + 2, until=T0 + 5)
    assert summary.overall.runs == 3
    assert summary.overall.by_status == {"failed": 2, "succeeded": 1}
    assert (summary.since, summary.until) == (T0 + 2, T0 + 5)


def test_no_runs_gives_empty_figures_not_errors() -> None:
    summary = summarize([])
    assert summary.overall.runs == 0 and summary.flows == {}
    assert summary.overall.failure_rate is None and summary.overall.p50_ms is None
    assert summary.to_json_dict()["overall"]["p95_ms"] is None


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([5.0], 0.95, 5.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5), ([4.0, 1.0, 3.0, 2.0], 0.0, 1.0), ([1.0, 2.0], 1.0, 2.0)],
)
def test_percentiles_interpolate_between_ranks(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_of_nothing_is_none_and_q_is_checked() -> None:
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError, match="within 0 and 1"):
        percentile([1.0], 95)


@pytest.mark.parametrize(
    ("text", "seconds_ago"),
    [
        ("24h", 86400),
        ("7d", 7 * 86400),
        ("90s", 90),
        ("30m", 1800),
        ("1d12h", 1.5 * 86400),
        ("1.5h", 5400),
        ("2w", 14 * 86400),
        ("500ms", 0.5),
    ],
)
def test_durations_mean_that_long_ago(text: str, seconds_ago: float) -> None:
    assert parse_time(text, now=T0) == pytest.approx(T0 - seconds_ago)


def test_iso_dates_and_times_are_moments() -> None:
    assert parse_time("2026-05-01T09:30Z", now=T0) == datetime(2026, 5, 1, 9, 30, tzinfo=UTC).timestamp()
    assert parse_time("2026-05-01", now=T0) == datetime(2026, 5, 1).timestamp()  # local midnight
    assert parse_time("2026-05-01T09:30", now=T0) == datetime(2026, 5, 1, 9, 30).timestamp()


@pytest.mark.parametrize("text", ["yesterday", "", "7", "7 days", "2026-13-01"])
def test_other_text_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"ISO date.*duration ago \(30m, 24h, 7d"):
        parse_time(text, now=T0)
