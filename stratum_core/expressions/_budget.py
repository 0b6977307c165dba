"""Budgets above one evaluation: the total expression work of a run, and keeping evaluation off the event loop.

One evaluation is bounded by its `Limits`; a plan with a thousand `ensure`s (or a `for_each` over many items) would
still add up. `expression_budget()` opens a budget shared by every evaluation inside it, in any task or thread that
inherits the context: the engine opens one per advance of a run, so one run's expressions, and the checks of one
plan, are bounded in total.

Evaluation must not hold the event loop either: `off_loop(fn, ...)` first runs `fn` on the loop within a short
slice (`SLICE_STEPS` steps, `SLICE_SECONDS`); an evaluation that needs more gives up its slice, and `fn` runs again
from the start in a worker thread. That is sound because evaluation is pure. No single call into C (a comparison, a
sort, a hash) is made without first bounding its work (see `_Evaluator.work`), and the worker thread gives the loop
the GIL between two steps of the interpreter, so the loop is never held longer than one bounded C call.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

__all__ = [
    "RUN_MAX_SECONDS",
    "RUN_MAX_STEPS",
    "SLICE_SECONDS",
    "SLICE_STEPS",
    "SMALL_VALUES",
    "ExpressionBudget",
    "current_budget",
    "current_slice",
    "expression_budget",
    "is_small",
    "off_loop",
]

T = TypeVar("T")

RUN_MAX_STEPS = 5_000_000
"""Steps all the expressions of one run may take together (50 evaluations at their own limit)."""
RUN_MAX_SECONDS = 2.5
"""Seconds all the expressions of one run may take together."""
SLICE_STEPS = 2_000
"""Steps an evaluation may take on the event loop before it moves to a worker thread."""
SLICE_SECONDS = 0.002
"""Seconds an evaluation may take on the event loop before it moves to a worker thread."""
WORKER_THREADS = 4
"""Evaluations and checks that run in worker threads at once (more wait for a thread)."""
SMALL_VALUES = 2_000
"""Values (text: per 64 characters) a value may hold and still be checked against a schema on the event loop."""

_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("stratum_expression_limiter")  # one per event loop


@dataclass
class ExpressionBudget:
    """Work shared by every evaluation in a context: steps and seconds used so far, and their limits."""

    max_steps: int = RUN_MAX_STEPS
    max_seconds: float = RUN_MAX_SECONDS
    steps: int = 0
    seconds: float = 0.0


@dataclass
class _Slice:
    """The part of an evaluation allowed on the event loop."""

    max_steps: int = SLICE_STEPS
    deadline: float = field(default_factory=lambda: time.perf_counter() + SLICE_SECONDS)


class SliceExhausted(Exception):
    """An evaluation on the event loop used its slice: run it again in a worker thread."""


_budget: contextvars.ContextVar[ExpressionBudget | None] = contextvars.ContextVar("stratum_budget", default=None)
_slice: contextvars.ContextVar[_Slice | None] = contextvars.ContextVar("stratum_slice", default=None)


_on_loop_only: contextvars.ContextVar[bool] = contextvars.ContextVar("stratum_on_loop_only", default=False)


@contextmanager
def on_loop_only() -> Iterator[None]:
    """Inside, `off_loop` runs its work on the event loop, whole: for a loop that has no worker threads.

    A durable workflow's event loop (Temporal's) is one: its code may not start threads, and it may be replayed, so
    the work runs where the workflow runs, still within the expression budget.
    """
    token = _on_loop_only.set(True)
    try:
        yield
    finally:
        _on_loop_only.reset(token)


def current_budget() -> ExpressionBudget | None:
    """The budget shared by evaluations in this context, if one is open."""
    return _budget.get()


def current_slice() -> _Slice | None:
    """The slice of the event loop this evaluation runs in, if it runs on the loop."""
    return _slice.get()


@contextmanager
def expression_budget(
    *, max_steps: int = RUN_MAX_STEPS, max_seconds: float = RUN_MAX_SECONDS
) -> Iterator[ExpressionBudget]:
    """Bound the total work of every evaluation inside (tasks and threads started inside inherit it).

    Inside an enclosing budget (a sub-flow, a resumed step), the enclosing budget stays the one in force.
    """
    budget = _budget.get() or ExpressionBudget(max_steps=max_steps, max_seconds=max_seconds)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def _without_slice(fn: Callable[..., T], *args: Any) -> T:
    token = _slice.set(None)
    try:
        return fn(*args)
    finally:
        _slice.reset(token)


def _limiter() -> anyio.CapacityLimiter:
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(WORKER_THREADS)
        _LIMITER.set(limiter)
        return limiter


def is_small(value: Any, *, limit: int = SMALL_VALUES) -> bool:
    """True when `value` holds at most `limit` values (strings count per 64 characters): checking it is quick."""
    budget = limit
    stack = [value]
    while stack:
        item = stack.pop()
        budget -= 1 + (len(item) // 64 if type(item) is str else 0)
        if budget < 0:
            return False
        if type(item) is dict:
            stack.extend(item.values())
            budget -= len(item)
        elif type(item) in (list, tuple):
            stack.extend(item)
    return True


async def off_loop(fn: Callable[..., T], *args: Any, inline: bool = True) -> T:
    """`fn(*args)`, which evaluates expressions or checks values, without holding the event loop beyond one slice.

    With `inline`, `fn` first runs on the loop within a slice and, if an expression in it needs more, again from the
    start in a worker thread: `fn` must have no effect but its result. Without `inline` (a value too large to check
    quickly against a schema, which cannot be cut short), it runs in the worker thread straight away.
    """
    if _on_loop_only.get():
        return _without_slice(fn, *args)
    if inline:
        token = _slice.set(_Slice())
        try:
            return fn(*args)
        except SliceExhausted:
            pass
        finally:
            _slice.reset(token)
    call = functools.partial(_without_slice, fn, *args)
    return await anyio.to_thread.run_sync(call, limiter=_limiter())
