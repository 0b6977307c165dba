"""Runs that outlive the tool call that started them.

A flow call starts its run in the background (a task group the server holds while it serves: the SDK's lifespan)
and follows it for a bounded time: the call answers with the run's outcome if it settles (finishes or pauses) in
that time, else with a handle while the run goes on. Later calls (`stratum_await`, `tasks/get`, a resume) follow
the same run again. While a call follows a run, the run's progress goes to that call's progress token, and a
handshake-era client that renders elicitation is asked through it; a person who does not answer before the call's
time is up leaves the review open (the run pauses) instead of holding the call.

When the server stops, runs still going are put down (`Engine.interrupt`: recorded as paused, `interrupted`), and
the next server on the same store picks them up again when it starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from stratum_core.engine import Engine, ReviewAnswer, ReviewRequest, RunObserver, RunResult
from stratum_core.store import RunBusy, RunRecord, RunStore, StoreError

__all__ = ["ActiveRun", "Follower", "Job", "Progress", "RunManager"]

logger = logging.getLogger("stratum.server")

INTERRUPTED = "interrupted"
"""The run attribute a run put down at shutdown carries (its value says why)."""
_SETTLE_GRACE = 5.0

Job = Callable[[RunObserver, "_FollowerSink"], Awaitable[RunResult]]
"""Runs (or resumes) a run with the observer and review sink the manager gives it, to its next settled state."""


@dataclass
class Progress:
    """How far a run is: top-level steps done of total, and the steps running now."""

    done: int = 0
    total: int = 0
    running: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape clients read."""
        return {"steps_done": self.done, "steps_total": self.total, "running": list(self.running)}


class Follower:
    """One tool call following a run: where its progress goes, and how it can ask a person (None: it cannot)."""

    def __init__(
        self, observer: RunObserver | None = None, ask: Callable[[ReviewRequest], Awaitable[Any]] | None = None
    ):
        self.observer = observer
        self.ask = ask
        self.asking: anyio.CancelScope | None = None


@dataclass
class ActiveRun:
    """A run this process is advancing now."""

    run_id: str
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    settled: anyio.Event = field(default_factory=anyio.Event)
    result: RunResult | None = None
    error: BaseException | None = None
    progress: Progress = field(default_factory=Progress)
    followers: list[Follower] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)


class _Tracker(RunObserver):
    """The observer of a background run: keeps its progress and passes events to the calls following it."""

    def __init__(self, active: ActiveRun, on_change: Callable[[str], Awaitable[None]]) -> None:
        self._active = active
        self._on_change = on_change

    async def step_started(self, run_id: str, step_id: str, kind: str) -> None:
        if "." not in step_id and "[" not in step_id:
            self._active.progress.running.append(step_id)
        for follower in list(self._active.followers):
            if follower.observer is not None:
                await follower.observer.step_started(run_id, step_id, kind)
        await self._on_change(run_id)

    async def step_finished(self, run_id: str, step_id: str, status: str, done: int, total: int) -> None:
        progress = self._active.progress
        if step_id in progress.running:
            progress.running.remove(step_id)
        progress.done, progress.total = max(progress.done, done), total
        for follower in list(self._active.followers):
            if follower.observer is not None:
                await follower.observer.step_finished(run_id, step_id, status, done, total)
        await self._on_change(run_id)

    async def log(self, run_id: str, level: str, message: str) -> None:
        for follower in list(self._active.followers):
            if follower.observer is not None:
                await follower.observer.log(run_id, level, message)


class _FollowerSink:
    """The review sink of a background run: asks through a following call that can ask now, else pauses the run."""

    def __init__(self, active: ActiveRun) -> None:
        self._active = active

    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None:
        follower = next((f for f in self._active.followers if f.ask is not None), None)
        if follower is None or follower.ask is None:
            return None
        with anyio.CancelScope() as scope:
            follower.asking = scope
            try:
                answer = await follower.ask(request)
            finally:
                follower.asking = None
            return answer if isinstance(answer, ReviewAnswer) else None
        logger.info("review %s: the person did not answer within the call's time; the run pauses", request.review_id)
        return None


class RunManager:
    """Background runs of one server: start, follow, cancel; put down at shutdown, picked up at start.

    Args:
        engine: the engine whose `interrupt` puts runs down.
        store: where runs are recorded.
        on_change: called (with the run id) whenever a run moved: a step started or ended, it settled.
    """

    def __init__(self, engine: Engine, store: RunStore, on_change: Callable[[str], Awaitable[None]]) -> None:
        self.engine = engine
        self.store = store
        self._on_change = on_change
        self._active: dict[str, ActiveRun] = {}
        self._group: TaskGroup | None = None
        self._users = 0
        self._idle = anyio.Event()

    # -- lifetime ------------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def serving(self, resume: Callable[[RunRecord], Job | None] | None = None) -> AsyncIterator[None]:
        """Hold the task group background runs live in; re-entrant (every connection of an in-process server).

        The first holder picks up runs put down by an earlier server (`resume` builds the job for each, or None to
        leave one alone); the last one to leave puts down the runs still going.
        """
        self._users += 1
        if self._group is not None:
            try:
                yield
            finally:
                self._users -= 1
                if self._users == 0:
                    self._idle.set()
            return
        self._idle = anyio.Event()
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                if resume is not None:
                    await self._pick_up(resume)
                try:
                    yield
                finally:
                    self._users -= 1
                    if self._users > 0:
                        with anyio.CancelScope(shield=True):
                            await self._idle.wait()
                    self._put_down("the server stopped")
                    group.cancel_scope.cancel()
        finally:
            self._group = None

    def _put_down(self, reason: str) -> None:
        for active in list(self._active.values()):
            if not active.settled.is_set():
                logger.info(
                    "run %s is put down (%s); a server on this store resumes it when it starts", active.run_id, reason
                )
                self.engine.interrupt(active.run_id, reason)
                active.scope.cancel()

    def report_interrupted(self) -> None:
        """Log the runs a dead server left running (its lease is dead): they go on when resumed by run id."""
        try:
            found = self.engine.interrupted_runs()
        except StoreError:
            logger.exception("could not look for runs left running by a server that stopped")
            return
        for run in found:
            logger.warning(
                "run %s of '%s' was left running by a server that stopped (%s): resume it with stratum_resume "
                '{"run_id": "%s"} (finished steps are not run again)',
                run.run_id,
                run.flow,
                run.lease_holder or "no holder recorded",
                run.run_id,
            )

    async def _pick_up(self, resume: Callable[[RunRecord], Job | None]) -> None:
        cursor: str | None = None
        while True:
            page = self.store.list_runs(status="paused", limit=200, cursor=cursor)
            for run in page.runs:
                if INTERRUPTED not in run.attributes:
                    continue
                job = resume(run)
                if job is None:
                    continue
                attributes = {key: value for key, value in run.attributes.items() if key != INTERRUPTED}
                try:
                    self.store.update_run(run.run_id, attributes=attributes)
                except StoreError:
                    logger.exception("run %s cannot be picked up", run.run_id)
                    continue
                logger.info("run %s was put down by an earlier server: resuming it", run.run_id)
                await self.start(run.run_id, job)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- runs ----------------------------------------------------------------------------------------------------

    def get(self, run_id: str) -> ActiveRun | None:
        """The run, if this process is advancing it now."""
        return self._active.get(run_id)

    async def start(self, run_id: str, job: Job) -> ActiveRun:
        """Start `job` for `run_id` in the background; returns once the job has begun (its run is recorded).

        Raises RuntimeError when the server is not serving (no task group), StoreError when this process is
        advancing the run already.
        """
        if self._group is None:
            raise RuntimeError("the run manager is not serving: enter RunManager.serving() first")
        if run_id in self._active:
            raise StoreError(f"run {run_id} is being advanced already")
        active = ActiveRun(run_id=run_id)
        self._active[run_id] = active
        await self._group.start(self._drive, active, job)
        return active

    async def _drive(self, active: ActiveRun, job: Job, *, task_status: TaskStatus[None]) -> None:
        tracker = _Tracker(active, self._on_change)
        try:
            with active.scope:
                task_status.started()
                try:
                    active.result = await job(tracker, _FollowerSink(active))
                except anyio.get_cancelled_exc_class():
                    raise
                except RunBusy as e:  # another process holds the run's lease: it goes on there
                    logger.info("run %s: %s", active.run_id, e)
                    active.error = e
                except Exception as e:
                    logger.exception("run %s failed outside the engine", active.run_id)
                    active.error = e
        finally:
            self._active.pop(active.run_id, None)
            active.settled.set()
            with anyio.CancelScope(shield=True):
                try:
                    await self._on_change(active.run_id)
                except Exception:
                    logger.debug("change notification dropped", exc_info=True)

    async def follow(self, active: ActiveRun, follower: Follower, *, wait: float, owner: bool = False) -> bool:
        """Follow a run for at most `wait` seconds; True when it settled (its outcome is in `active`).

        A person being asked through this call when the time is up is left (the review stays open, the run
        pauses). When `owner` (the call that started the run and has not handed out a handle), cancelling the call
        cancels the run.
        """
        active.followers.append(follower)
        try:
            with anyio.move_on_after(wait):
                await active.settled.wait()
            if not active.settled.is_set() and follower.asking is not None:
                follower.asking.cancel()
                with anyio.move_on_after(_SETTLE_GRACE):
                    await active.settled.wait()
        except anyio.get_cancelled_exc_class():
            if owner and not active.settled.is_set():
                active.scope.cancel()
                with anyio.CancelScope(shield=True), anyio.move_on_after(_SETTLE_GRACE):
                    await active.settled.wait()
            raise
        finally:
            if follower in active.followers:
                active.followers.remove(follower)
        return active.settled.is_set()

    async def cancel(self, run_id: str) -> bool:
        """Cancel a run this process advances, and wait (briefly) until it is recorded; False if it is not here."""
        active = self._active.get(run_id)
        if active is None:
            return False
        active.scope.cancel()
        with anyio.move_on_after(_SETTLE_GRACE):
            await active.settled.wait()
        return True
