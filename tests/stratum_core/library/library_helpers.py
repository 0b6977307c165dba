"""Helpers for the library tests (pytest puts this folder on sys.path): a scripted review sink, trace readers."""

from __future__ import annotations

from typing import Any

from stratum_core.engine import Engine, ReviewAnswer, ReviewRequest
from stratum_core.store import AttemptRecord, Trace


class ScriptedSink:
    """A review sink that answers from a script, and keeps what it was asked."""

    def __init__(self, *answers: ReviewAnswer | None) -> None:
        self.answers = list(answers)
        self.asked: list[ReviewRequest] = []

    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None:
        self.asked.append(request)
        return self.answers.pop(0) if self.answers else None


def last_trace(engine: Engine, flow: str | None = None) -> Trace:
    """The trace of the newest run (of `flow`)."""
    runs = engine.store.list_runs(flow=flow, limit=1).runs
    assert runs, "no run recorded"
    trace = engine.store.get_trace(runs[0].run_id)
    assert trace is not None
    return trace


def steps(trace: Trace) -> list[tuple[str, str, str | None, str]]:
    """(step_id, kind, function, status) of every step, in recorded order."""
    return [(s.step_id, s.kind, s.function, s.status) for s in trace.steps]


def attempts_of(trace: Trace, step_id: str) -> list[AttemptRecord]:
    return [a for a in trace.attempts if a.step_id == step_id]
