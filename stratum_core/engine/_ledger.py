"""What a run has spent, durably: read back from its checkpoint so that a resumed run keeps counting.

Money and tokens are the sum of the run's recorded attempts (each is written as it ends). A call in flight is
written before it is made, as an open reservation: should the process die before the call's attempt is recorded,
the next process to advance the run charges that reservation as spent (its worst case), so a crash cannot be used
to overspend. The time used, the open reservations and a raised budget live in the run's `attributes["budget"]`;
a step with its own `ms` budget keeps the time it used in its step record (`attributes["ms_used"]`), so that a
resumed step continues its clock instead of starting a new one:

```
{"ms_used": 1234.5,            time the run's executions used so far (paused time does not count)
 "active_since": 1767000000.0, epoch when the current execution started (null when none is running)
 "override": {"usd": 0.1},     the budget a resume raised (`stratum resume RUN --budget usd=0.10`)
 "overruns": [...],            what an audit budget recorded
 "reserved_tokens": 0, "reserved_usd": 0.0,   what the run's calls reserved, in all
 "open": {"<key>": {...}}}     calls in flight: reserved and not yet recorded (see `hold_reservation`)
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stratum_core.engine._budget import Reservation, Usage
from stratum_core.plan import Budget
from stratum_core.store import AttemptRecord, RunRecord, RunStore, StepRecord

__all__ = [
    "IN_FLIGHT_AT_EXIT",
    "STEP_MS_USED",
    "SpendLedger",
    "budget_state",
    "charge_open_reservations",
    "effective_budget",
    "hold_reservation",
    "release_reservation",
]

IN_FLIGHT_AT_EXIT = "in flight when its process ended; its whole reservation is charged"
STEP_MS_USED = "ms_used"
"""The step attribute holding the time a step with its own `ms` budget used, earlier executions included."""


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


def hold_reservation(
    store: RunStore, run_id: str, key: str, reservation: Reservation, *, step_id: str, kind: str, started_at: float
) -> None:
    """Write a call's reservation into the run before the call is made (released when its attempt is recorded)."""
    entry = {
        "step_id": step_id,
        "kind": kind,
        "model": reservation.model,
        "prompt_tokens": reservation.prompt_tokens,
        "max_tokens": reservation.max_tokens,
        "usd": reservation.usd if reservation.price is not None else None,
        "started_at": started_at,
    }
    _set_open(store, run_id, lambda held: {**held, key: entry})


def release_reservation(store: RunStore, run_id: str, key: str) -> None:
    """Forget a held reservation: its call's attempt, with what it really used, is recorded."""
    _set_open(store, run_id, lambda held: {k: v for k, v in held.items() if k != key})


def _set_open(store: RunStore, run_id: str, change: Any) -> None:
    # No await between the read and the write: calls of one process do not interleave here, and one process
    # advances a run at a time (the lease).
    record = store.get_run(run_id)
    if record is None:
        return
    state = budget_state(record)
    held = change(_open(state))
    store.update_run(run_id, attributes={**record.attributes, "budget": {**state, "open": held}})


def _open(state: Mapping[str, Any]) -> dict[str, Any]:
    held = state.get("open")
    return dict(held) if isinstance(held, Mapping) else {}


def charge_open_reservations(store: RunStore, record: RunRecord, attempts: Sequence[AttemptRecord]) -> RunRecord:
    """Record each call a dead process left in flight as an attempt charged its whole reservation.

    `attempts` are the run's recorded attempts (the new ones are numbered after them). Returns the run, its open
    reservations cleared.
    """
    state = budget_state(record)
    held = _open(state)
    if not held:
        return record
    numbers: dict[str, int] = {}
    for attempt in attempts:
        numbers[attempt.step_id] = max(numbers.get(attempt.step_id, 0), attempt.number)
    for entry in held.values():
        step_id = str(entry["step_id"])
        numbers[step_id] = numbers.get(step_id, 0) + 1
        prompt, answer = int(entry["prompt_tokens"]), int(entry["max_tokens"])
        usd = entry.get("usd")
        store.add_attempt(
            AttemptRecord(
                run_id=record.run_id,
                step_id=step_id,
                number=numbers[step_id],
                kind=str(entry.get("kind") or "infer"),
                model=entry.get("model"),
                tokens_in=prompt,
                tokens_out=answer,
                cost_usd=float(usd) if usd is not None else None,
                reserved_tokens=prompt + answer,
                reserved_usd=float(usd) if usd is not None else None,
                started_at=float(entry["started_at"]),
                error=IN_FLIGHT_AT_EXIT,
            )
        )
    return store.update_run(record.run_id, attributes={**record.attributes, "budget": {**state, "open": {}}})


class SpendLedger:
    """The usage of a run's earlier attempts, by step path, and the time its timed steps used."""

    def __init__(
        self, attempts: Sequence[AttemptRecord], steps: Sequence[StepRecord] = (), *, ended_at: float = 0.0
    ) -> None:
        self.attempts = tuple(attempts)
        self.steps = {step.step_id: step for step in steps}
        self.ended_at = ended_at
        """When the last execution was last seen doing something (see `last_activity`)."""

    def total(self) -> Usage:
        """Everything the run's earlier attempts used."""
        return _usage(self.attempts)

    def spent_under(self, path: str) -> Usage:
        """What the earlier attempts of the step at `path` (and of the steps inside it) used."""
        inside = (path + ".", path + "[")
        return _usage([a for a in self.attempts if a.step_id == path or a.step_id.startswith(inside)])

    def elapsed_under(self, path: str) -> float:
        """Milliseconds the step at `path` used of its own `ms` budget in earlier executions.

        A step still marked running was cut short by its process's end: the time until the run's last recorded
        activity counts too.
        """
        step = self.steps.get(path)
        if step is None:
            return 0.0
        used = step.attributes.get(STEP_MS_USED)
        if not isinstance(used, int | float):
            return 0.0
        if step.status == "running" and step.started_at is not None:
            return float(used) + max(0.0, self.ended_at - step.started_at) * 1000
        return float(used)

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
