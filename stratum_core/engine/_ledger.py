"""What a run has spent, durably: read back from its checkpoint so that a resumed run keeps counting.

Money and tokens are the sum of the run's recorded attempts (each is written as it ends, so a crash loses at most
the calls in flight); the time used and a raised budget live in the run's `attributes["budget"]`:

```
{"ms_used": 1234.5,            time the run's executions used so far (paused time does not count)
 "active_since": 1767000000.0, epoch when the current execution started (null when none is running)
 "override": {"usd": 0.1},     the budget a resume raised (`stratum resume RUN --budget usd=0.10`)
 "overruns": [...],            what an audit budget recorded
 "reserved_tokens": 0, "reserved_usd": 0.0}   reservations still open when the execution ended
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stratum_core.engine._budget import Usage
from stratum_core.plan import Budget
from stratum_core.store import AttemptRecord, RunRecord

__all__ = ["SpendLedger", "budget_state", "effective_budget"]


def budget_state(record: RunRecord) -> dict[str, Any]:
    """The run's budget checkpoint (empty for a run that never ran)."""
    state = record.attributes.get("budget")
    return dict(state) if isinstance(state, Mapping) else {}


def effective_budget(budget: Budget | None, state: Mapping[str, Any]) -> Budget | None:
    """The flow's budget with a resume's raised dimensions laid over it."""
    override = state.get("override")
    if not isinstance(override, Mapping) or not override:
        return budget
    base = budget.model_dump(exclude_none=True) if budget is not None else {}
    return Budget.model_validate({**base, **override})


class SpendLedger:
    """The usage of a run's earlier attempts, by step path."""

    def __init__(self, attempts: Sequence[AttemptRecord]) -> None:
        self.attempts = tuple(attempts)

    def total(self) -> Usage:
        """Everything the run's earlier attempts used."""
        return _usage(self.attempts)

    def spent_under(self, path: str) -> Usage:
        """What the earlier attempts of the step at `path` (and of the steps inside it) used."""
        inside = (path + ".", path + "[")
        return _usage([a for a in self.attempts if a.step_id == path or a.step_id.startswith(inside)])

    def last_activity(self, record: RunRecord) -> float:
        """The latest time something of the run was recorded (how long a process that died was running)."""
        ends = [a.started_at + (a.duration_ms or 0.0) / 1000 for a in self.attempts]
        return max([record.updated_at, *ends])


def _usage(attempts: Sequence[AttemptRecord]) -> Usage:
    usage = Usage()
    for attempt in attempts:
        usage.tokens_in += attempt.tokens_in
        usage.tokens_out += attempt.tokens_out
        if attempt.cost_usd is None:
            usage.cost_unknown = usage.cost_unknown or attempt.tokens_in + attempt.tokens_out > 0
        else:
            usage.cost_usd += attempt.cost_usd
    return usage
