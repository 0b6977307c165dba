"""Helpers for the library tests (pytest puts this folder on sys.path): a scripted review sink, trace readers."""

from __future__ import annotations

import anyio

from stratum_core.engine import Engine, ReviewAnswer, ReviewRequest
from stratum_core.store import AttemptRecord, Trace

HANG = "hang"
"""A scripted answer that never comes: the person is asked and does not answer (until the step's timeout)."""


class ScriptedSink:
    """A review sink that answers from a script (None: cannot ask now, HANG: never answers), and keeps what it was
    asked."""

    def __init__(self, *answers: ReviewAnswer | str | None) -> None:
        self.answers = list(answers)
        self.asked: list[ReviewRequest] = []

    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None:
        self.asked.append(request)
        answer = self.answers.pop(0) if self.answers else None
        if answer == HANG:
            await anyio.sleep_forever()
        assert not isinstance(answer, str)
        return answer


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
