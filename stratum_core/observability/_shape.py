"""The shape of a recorded run, shared by the OpenTelemetry exporter and the timeline: what nests in what, and when.

Step ids are paths (`group.branch`, `step[2]`, `sub.inner`, `debate.agent[1]`); a step's parent is the nearest
recorded step whose id is a prefix of it cut at a `.` or `[`. A step's interval covers its record, its attempts and
the wait for its reviews (a human step resumed in another process is recorded from the resume, but its wait began
when the review was asked), and a parent's interval covers its children's.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from stratum_core.store import AttemptRecord, ReviewRecord, RunRecord, StepRecord, Trace

__all__ = ["RunShape", "StepNode", "attempt_end", "parent_step_id", "review_interval", "run_shape"]

_CUTS = ".["


def parent_step_id(step_id: str, known: Collection[str]) -> str | None:
    """The nearest step in `known` that `step_id` nests in ('group' for 'group.a', 'f' for 'f[2]'), or None."""
    for index in range(len(step_id) - 1, 0, -1):
        if step_id[index] in _CUTS and step_id[:index] in known:
            return step_id[:index]
    return None


def attempt_end(attempt: AttemptRecord) -> float:
    """When an attempt ended: its start plus its duration (epoch seconds)."""
    return attempt.started_at + (attempt.duration_ms or 0.0) / 1000


def review_interval(review: ReviewRecord, run_end: float) -> tuple[float, float]:
    """When a person was waited for: from the ask to the answer (or the deadline, or the run's end when pending)."""
    if review.decided_at is not None:
        end = review.decided_at
    elif review.status != "pending" and review.deadline is not None:
        end = min(review.deadline, run_end)
    else:
        end = run_end
    return review.created_at, max(end, review.created_at)


@dataclass(frozen=True, kw_only=True)
class StepNode:
    """One step with its place in the tree and its interval (epoch seconds)."""

    step: StepRecord
    parent: str | None
    depth: int
    start: float
    end: float
    attempts: tuple[AttemptRecord, ...]
    reviews: tuple[ReviewRecord, ...]

    @property
    def failed_attempts(self) -> int:
        """Attempts whose answer was rejected (violations) or whose call failed."""
        return sum(1 for attempt in self.attempts if attempt.violations or attempt.error)


@dataclass(frozen=True, kw_only=True)
class RunShape:
    """A run's interval and its steps in tree order: a step, then its children, siblings in start order."""

    run: RunRecord
    start: float
    end: float
    steps: tuple[StepNode, ...]
    orphan_attempts: tuple[AttemptRecord, ...]

    @property
    def duration(self) -> float:
        """Seconds from the run's creation to its last recorded moment."""
        return self.end - self.start


def _run_end(trace: Trace) -> float:
    run = trace.run
    moments = [run.created_at, run.updated_at]
    if run.finished_at is not None:
        moments.append(run.finished_at)
    for step in trace.steps:
        moments.extend(t for t in (step.started_at, step.finished_at) if t is not None)
    moments.extend(attempt_end(a) for a in trace.attempts)
    for review in trace.reviews:
        moments.extend(t for t in (review.created_at, review.decided_at) if t is not None)
    return max(moments)


def run_shape(trace: Trace) -> RunShape:
    """Nest the steps of `trace` by path and give every step (and the run) an interval that covers what it holds."""
    run = trace.run
    end = _run_end(trace)
    known = {step.step_id for step in trace.steps}
    parents = {step.step_id: parent_step_id(step.step_id, known) for step in trace.steps}
    attempts: dict[str, list[AttemptRecord]] = {}
    for attempt in sorted(trace.attempts, key=lambda a: (a.step_id, a.number)):
        attempts.setdefault(attempt.step_id, []).append(attempt)
    reviews: dict[str, list[ReviewRecord]] = {}
    for review in trace.reviews:
        reviews.setdefault(review.step_id, []).append(review)

    intervals: dict[str, tuple[float, float]] = {}
    for step in trace.steps:
        starts = [step.started_at if step.started_at is not None else run.created_at]
        ends = [step.finished_at if step.finished_at is not None else end]
        for attempt in attempts.get(step.step_id, ()):
            starts.append(attempt.started_at)
            ends.append(attempt_end(attempt))
        for review in reviews.get(step.step_id, ()):
            wait_start, wait_end = review_interval(review, end)
            starts.append(wait_start)
            ends.append(wait_end)
        intervals[step.step_id] = (min(starts), max(ends))

    depth: dict[str, int] = {}

    def depth_of(step_id: str) -> int:
        if step_id not in depth:
            parent = parents[step_id]
            depth[step_id] = 0 if parent is None else depth_of(parent) + 1
        return depth[step_id]

    for step_id in sorted(known, key=depth_of, reverse=True):  # children before parents: parents cover children
        parent = parents[step_id]
        if parent is not None:
            (p_start, p_end), (c_start, c_end) = intervals[parent], intervals[step_id]
            intervals[parent] = (min(p_start, c_start), max(p_end, c_end))

    order = {step.step_id: index for index, step in enumerate(trace.steps)}
    children: dict[str | None, list[StepRecord]] = {}
    for step in trace.steps:
        children.setdefault(parents[step.step_id], []).append(step)
    nodes: list[StepNode] = []

    def visit(parent: str | None) -> None:
        for step in sorted(children.get(parent, ()), key=lambda s: (intervals[s.step_id][0], order[s.step_id])):
            start, stop = intervals[step.step_id]
            nodes.append(
                StepNode(
                    step=step,
                    parent=parent,
                    depth=depth_of(step.step_id),
                    start=start,
                    end=stop,
                    attempts=tuple(attempts.get(step.step_id, ())),
                    reviews=tuple(reviews.get(step.step_id, ())),
                )
            )
            visit(step.step_id)

    visit(None)
    start = min([run.created_at, *(node.start for node in nodes)])
    orphans = tuple(a for a in sorted(trace.attempts, key=lambda a: a.started_at) if a.step_id not in known)
    return RunShape(
        run=run, start=start, end=max([end, *(node.end for node in nodes)]), steps=tuple(nodes), orphan_attempts=orphans
    )
