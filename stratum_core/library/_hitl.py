"""Human review in the reference library's shape: `HumanReviewContext`, `PendingReview`, sinks with `emit`.

The reference's `await_human(context=HumanReviewContext(question=...), decision_type=str, options=[...],
timeout=timedelta(...), on_timeout=...)` asks through a sink whose `async emit(review)` receives a PendingReview and
resolves it (`review.resolve(HumanDecision(...))`), now or later. Here it runs on the engine's human step: the
decision is a review in the run store (so it is traced and survives a restart), and an `emit` sink is adapted to the
engine's `ask` protocol. Unlike the reference, `emit` is inside the timeout, a resolved value is checked against the
decision's type (generics such as Literal included) and a wrong one is refused with TypeError without ending the
wait, and every decision is in the trace.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anyio

from stratum_core.engine import ReviewAnswer, ReviewRequest
from stratum_core.engine._validation import schema_violations
from stratum_core.library._primitives import await_human as _await_human
from stratum_core.library._results import HumanDecision
from stratum_core.library._step_call import StepCall

__all__ = [
    "ConsoleReviewSink",
    "EmitSink",
    "HumanReviewContext",
    "PendingReview",
    "ReviewSink",
    "adapt_review_sink",
    "await_human",
]


@dataclass
class HumanReviewContext:
    """What a person is shown: the question, why it is asked, and artifacts (names to values)."""

    question: str
    trigger: str = "explicit"
    artifacts: dict[str, Any] = field(default_factory=dict)


_PYTHON_TYPES: dict[str, type] = {"string": str, "boolean": bool, "integer": int, "number": float, "object": dict}


@dataclass
class PendingReview:
    """A decision waiting for a person; a sink shows it and calls `resolve(HumanDecision(...))` when decided."""

    review_id: str
    context: HumanReviewContext
    options: list[Any] | None
    expires_at: datetime.datetime | None
    decision_type: Any
    schema: Mapping[str, Any] = field(default_factory=dict, repr=False)
    _decided: anyio.Event = field(default_factory=anyio.Event, repr=False)
    _decision: HumanDecision[Any] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        """Whether the review has been resolved."""
        return self._decided.is_set()

    def resolve(self, decision: HumanDecision[Any]) -> None:
        """Decide the review; a second resolve is ignored, a value of the wrong type raises TypeError."""
        if self._decided.is_set():
            return
        violations = schema_violations(_form_value(decision.value, self.schema), self.schema, root="decision")
        if violations:
            raise TypeError(f"the decision does not fit {_type_name(self.decision_type)}: {'; '.join(violations)}")
        self._decision = decision
        self._decided.set()

    async def wait(self) -> HumanDecision[Any]:
        """The decision, once `resolve` has been called."""
        await self._decided.wait()
        assert self._decision is not None
        return self._decision


@runtime_checkable
class EmitSink(Protocol):
    """The reference's sink: shows a PendingReview to a person, who resolves it (now or later)."""

    async def emit(self, review: PendingReview) -> None: ...


ReviewSink = EmitSink
"""The reference's name for a sink with `emit` (the engine's own sinks have `ask`; both are accepted)."""


def _type_name(decision_type: Any) -> str:
    return getattr(decision_type, "__name__", None) or str(decision_type)


def _wrapped(schema: Mapping[str, Any]) -> bool:
    properties = schema.get("properties")
    return isinstance(properties, Mapping) and set(properties) == {"value"}


def _form_value(value: Any, schema: Mapping[str, Any]) -> Any:
    """A decided value as the review form holds it: a record's fields, or `{"value": v}` for a primitive."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if _wrapped(schema) and not (isinstance(value, Mapping) and set(value) == {"value"}):
        return {"value": value}
    return value


def _python_type(schema: Mapping[str, Any]) -> Any:
    target: Mapping[str, Any] = schema.get("properties", {}).get("value", {}) if _wrapped(schema) else schema
    kind = target.get("type")
    return _PYTHON_TYPES.get(kind, dict) if isinstance(kind, str) else dict


class _EmitAdapter:
    """Makes a sink with `emit` an engine review sink (`ask`)."""

    def __init__(self, sink: EmitSink) -> None:
        self.sink = sink

    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None:
        expires = (
            datetime.datetime.fromtimestamp(request.deadline, tz=datetime.UTC) if request.deadline is not None else None
        )
        review = PendingReview(
            review_id=request.review_id,
            context=HumanReviewContext(question=request.question, artifacts=dict(request.context)),
            options=list(request.options) if request.options is not None else None,
            expires_at=expires,
            decision_type=_python_type(request.schema),
            schema=request.schema,
        )
        await self.sink.emit(review)
        decision = await review.wait()
        value = _form_value(decision.value, request.schema)
        return ReviewAnswer(
            action="accept",
            value=value,
            reviewer=decision.reviewer or "unknown",
            rationale=decision.rationale,
        )


def adapt_review_sink(sink: Any) -> Any:
    """The engine sink for `sink`: as is when it has `ask`, adapted when it only has the reference's `emit`."""
    if sink is None or hasattr(sink, "ask"):
        return sink
    if hasattr(sink, "emit"):
        return _EmitAdapter(sink)
    raise TypeError(f"review_sink {sink!r} has neither ask(request) nor emit(review)")


class ConsoleReviewSink:
    """The reference's console sink: prints the question and its options, reads the decision from standard input.

    The wait for input runs in a worker thread that is given up when the review times out, so a timed-out review
    never keeps the program from ending (the reference's did, until a line was typed).
    """

    def __init__(self, *, prompt: str = "Decision: ") -> None:
        self.prompt = prompt

    async def emit(self, review: PendingReview) -> None:
        print(f"\n[HITL] {review.context.question}", file=sys.stderr)
        for index, option in enumerate(review.options or []):
            print(f"  [{index}] {option}", file=sys.stderr)
        while not review.done:
            line = await anyio.to_thread.run_sync(_read_line, self.prompt, abandon_on_cancel=True)
            if line is None:
                return
            text = line.strip()
            value: Any = text
            if review.options and text.isdigit() and int(text) < len(review.options):
                value = review.options[int(text)]
            elif review.decision_type is bool:
                value = text.lower() in ("y", "yes", "true", "1")
            try:
                review.resolve(HumanDecision(value=value, review_id=review.review_id, reviewer="console"))
            except TypeError as error:
                print(f"[HITL] Invalid input: {error}. Please try again.", file=sys.stderr)


def _read_line(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None


def await_human(
    context: HumanReviewContext | str | Mapping[str, Any] | None = None,
    decision_type: Any = bool,
    options: Sequence[Any] | None = None,
    timeout: float | datetime.timedelta | None = None,
    on_timeout: Any = "raise",
    *,
    question: str | None = None,
) -> StepCall[HumanDecision[Any]]:
    """The reference's `await_human`: `context` may be a HumanReviewContext (its question and artifacts)."""
    if isinstance(context, HumanReviewContext):
        shown: Mapping[str, Any] = dict(context.artifacts)
        return _await_human(
            question=question or context.question,
            context=shown,
            decision_type=decision_type,
            options=options,
            timeout=timeout,
            on_timeout=on_timeout,
        )
    return _await_human(
        question=question,
        context=context,
        decision_type=decision_type,
        options=options,
        timeout=timeout,
        on_timeout=on_timeout,
    )
