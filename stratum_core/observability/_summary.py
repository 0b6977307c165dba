"""Summaries of many runs: runs per flow, failure rates by error type, p50/p95 duration, tokens and cost.

`summarize` is a pure function over RunRecords (a store's `list_runs` pages), so the figures are tested on
hand-made records and the CLI only reads pages and prints.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from stratum_core.store import RunRecord

__all__ = ["ErrorCount", "RunStats", "Summary", "parse_time", "percentile", "summarize"]

_ENDED = ("succeeded", "failed", "cancelled")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|min|s|m|h|d|w))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|min|s|m|h|d|w)")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorCount(_Model):
    """Failed runs with one error type; `rate` is their share of the runs that ended."""

    type: str
    runs: int
    rate: float


class RunStats(_Model):
    """Figures over a set of runs.

    Attributes:
        runs: how many runs.
        by_status: runs per status.
        ended: runs that succeeded, failed or were cancelled (the denominator of the rates).
        failure_rate: failed / ended (None when no run ended).
        failures: failed runs by error type, most frequent first.
        p50_ms, p95_ms: run durations (creation to end, a wait for a person included) over the runs that ended.
        cost_unknown_runs: runs with a model call of unknown price; `cost_usd` leaves those calls out.
    """

    runs: int
    by_status: dict[str, int]
    ended: int
    failure_rate: float | None
    failures: list[ErrorCount]
    p50_ms: float | None
    p95_ms: float | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    cost_unknown_runs: int

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.tokens_in + self.tokens_out


class Summary(_Model):
    """Runs over a period (epoch seconds; `since` inclusive, `until` exclusive, None: open), overall and per flow.

    `flows` is ordered by run count, most runs first.
    """

    since: float | None
    until: float | None
    overall: RunStats
    flows: dict[str, RunStats]

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON shape of `stratum runs summary --format json`."""
        return self.model_dump(mode="json")


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation between the closest ranks; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= q <= 1:
        raise ValueError(f"q must be within 0 and 1, got {q}")
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _stats(runs: list[RunRecord]) -> RunStats:
    statuses: Counter[str] = Counter(run.status for run in runs)
    ended = sum(statuses[status] for status in _ENDED)
    errors = Counter(str((run.error or {}).get("type") or "unknown") for run in runs if run.status == "failed")
    durations = [run.duration_ms for run in runs if run.status in _ENDED and run.duration_ms is not None]
    return RunStats(
        runs=len(runs),
        by_status=dict(sorted(statuses.items())),
        ended=ended,
        failure_rate=statuses["failed"] / ended if ended else None,
        failures=[
            ErrorCount(type=kind, runs=count, rate=count / ended)
            for kind, count in sorted(errors.items(), key=lambda item: (-item[1], item[0]))
        ],
        p50_ms=percentile(durations, 0.5),
        p95_ms=percentile(durations, 0.95),
        tokens_in=sum(run.tokens_in for run in runs),
        tokens_out=sum(run.tokens_out for run in runs),
        cost_usd=sum(run.cost_usd for run in runs),
        cost_unknown_runs=sum(1 for run in runs if run.cost_unknown),
    )


def summarize(runs: Iterable[RunRecord], *, since: float | None = None, until: float | None = None) -> Summary:
    """Summarize `runs` created within [since, until) (others are left out), overall and per flow."""
    kept = [
        run for run in runs if (since is None or run.created_at >= since) and (until is None or run.created_at < until)
    ]
    by_flow: dict[str, list[RunRecord]] = {}
    for run in kept:
        by_flow.setdefault(run.flow, []).append(run)
    flows = sorted(by_flow.items(), key=lambda item: (-len(item[1]), item[0]))
    return Summary(since=since, until=until, overall=_stats(kept), flows={flow: _stats(r) for flow, r in flows})


def parse_time(text: str, *, now: float | None = None) -> float:
    """A moment as epoch seconds: an ISO date or date-time (naive ones are local time), or a duration ago.

    Durations are numbers with units ms, s, m or min, h, d, w, and may be combined: '90s', '24h', '7d', '1d12h'.
    Raises ValueError saying what is accepted.
    """
    cleaned = text.strip().replace(" ", "")
    now = time.time() if now is None else now
    if cleaned and _DURATION.match(cleaned):
        return now - sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(cleaned))
    try:
        if len(cleaned) == 10:
            day = date.fromisoformat(cleaned)
            return datetime(day.year, day.month, day.day).timestamp()
        return datetime.fromisoformat(cleaned).timestamp()
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO date or time (2026-05-01, 2026-05-01T09:30, 2026-05-01T09:30Z) nor a "
            "duration ago (30m, 24h, 7d, 1d12h)"
        ) from None


def describe_period(since: float | None, until: float | None) -> str:
    """A period for people: 'since 2026-05-01 09:30 until now'."""

    def moment(value: float | None, default: str) -> str:
        return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M") if value is not None else default

    return f"{moment(since, 'the first run')} to {moment(until, 'now')}"


def status_counts(stats: RunStats, statuses: Iterable[str]) -> Mapping[str, int]:
    """Counts for the given statuses (0 when absent), in that order."""
    return {status: stats.by_status.get(status, 0) for status in statuses}
