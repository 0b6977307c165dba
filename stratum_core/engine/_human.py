"""Human steps (await_human): a decision asked of a person through a ReviewSink, durably.

A review is a record in the store before anyone is asked, so a run that waits for a person is a checkpoint: if
the sink cannot ask now (or the process dies), the run pauses; answering the review in the store and resuming the
run (in any process) continues from there. Meanings of the answers:

- accept: the answer's value (validated against the decision contract) is the step's output;
- decline / cancel: the step fails with HumanRejected (the action is recorded in the trace);
- no answer before the timeout: `on_timeout` is the output, or HITLTimeoutError when it is `raise`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import anyio

from stratum_core.engine._pending import Pending
from stratum_core.engine._types import ReviewAnswer, ReviewRequest, ReviewSink
from stratum_core.engine._validation import schema_violations
from stratum_core.errors import HITLTimeoutError, HumanRejected, PostconditionFailed
from stratum_core.plan import HumanFunction, Plan
from stratum_core.plan._schema import type_schema
from stratum_core.store import ReviewRecord, RunStore

__all__ = ["AwaitingReview", "decision_form", "run_human"]


class AwaitingReview(Pending):
    """The step waits for a person; the run pauses with this review pending."""

    def __init__(self, request: ReviewRequest) -> None:
        super().__init__([request])
        self.request = request


def decision_form(fn: HumanFunction, plan: Plan) -> tuple[dict[str, Any], bool]:
    """The flat form schema a person fills in, and whether the decision is a primitive wrapped as `value`.

    `options` become the enum of the decision's first required field (or of `value` for a primitive decision).
    """
    schema = type_schema(fn.output, plan.contracts)
    schema.pop("$schema", None)
    wrapped = schema.get("type") != "object"
    if wrapped:
        schema = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    properties: dict[str, Any] = {key: dict(value) for key, value in schema.get("properties", {}).items()}
    if fn.options is not None and properties:
        required = schema.get("required") or list(properties)
        first = required[0] if required else next(iter(properties))
        properties[first]["enum"] = list(fn.options)
    form = {"type": "object", "properties": properties, "required": list(schema.get("required", []))}
    return form, wrapped


def _find_review(store: RunStore, run_id: str, step_id: str) -> ReviewRecord | None:
    for review in store.list_reviews(status=None, run_id=run_id):
        if review.step_id == step_id:
            return review
    return None


def _on_timeout(fn: HumanFunction, review_id: str, step_id: str) -> Any:
    if fn.on_timeout == "raise":
        raise HITLTimeoutError(
            f"no answer to {fn.question!r} within {fn.timeout:g} s", review_id=review_id, step_id=step_id
        )
    return fn.on_timeout


def _accepted_value(fn: HumanFunction, answer_value: Any, form: Mapping[str, Any], wrapped: bool, step_id: str) -> Any:
    value = dict(answer_value or {})
    violations = schema_violations(value, form, root="decision")
    if violations:
        raise PostconditionFailed(
            f"the decision does not match its contract: {'; '.join(violations)}", history=[violations], step_id=step_id
        )
    return value.get("value") if wrapped else value


async def run_human(
    fn: HumanFunction,
    inputs: Mapping[str, Any],
    *,
    plan: Plan,
    run_id: str,
    step_id: str,
    store: RunStore,
    sink: ReviewSink | None,
    attributes: dict[str, Any],
) -> Any:
    """Ask (or find the answer to) the step's decision and return the decided value."""
    form, wrapped = decision_form(fn, plan)
    review = _find_review(store, run_id, step_id)
    if review is None:
        now = time.time()
        review = ReviewRecord(
            review_id=uuid.uuid4().hex,
            run_id=run_id,
            step_id=step_id,
            question=fn.question,
            request={
                "schema": form,
                "options": list(fn.options) if fn.options else None,
                "context": dict(inputs),
                "timeout": fn.timeout,
                "answered_by": fn.answered_by,
            },
            status="pending",
            created_at=now,
            deadline=now + fn.timeout if fn.timeout is not None else None,
        )
        store.create_review(review)
    attributes["review_id"] = review.review_id

    if review.status == "pending" and review.deadline is not None and time.time() >= review.deadline:
        store.close_review(review.review_id, status="timed_out")
        return _on_timeout(fn, review.review_id, step_id)
    if review.status == "timed_out":
        return _on_timeout(fn, review.review_id, step_id)
    if review.status == "pending":
        request = ReviewRequest(
            review_id=review.review_id,
            run_id=run_id,
            step_id=step_id,
            question=fn.question,
            schema=form,
            options=fn.options,
            context=dict(inputs),
            timeout=fn.timeout,
            deadline=review.deadline,
            requires_person=review.needs_person,
        )
        if sink is None:
            raise AwaitingReview(request)
        answer: ReviewAnswer | None = None
        wait = review.deadline - time.time() if review.deadline is not None else None
        with anyio.move_on_after(wait):
            answer = await sink.ask(request)
            if answer is None:
                raise AwaitingReview(request)
        if answer is None:
            store.close_review(review.review_id, status="timed_out")
            return _on_timeout(fn, review.review_id, step_id)
        review = store.answer_review(
            review.review_id,
            action=answer.action,
            value=dict(answer.value) if answer.value is not None else None,
            reviewer=answer.reviewer,
            rationale=answer.rationale,
            answered_by=answer.answered_by,
            channel=answer.channel,
        )
    attributes.update(
        {
            "decision": review.action,
            "reviewer": review.reviewer,
            "answered_by": review.answered_by,
            "channel": review.channel,
            "rationale": review.rationale,
            "decided_at": review.decided_at,
        }
    )
    if review.action != "accept":
        raise HumanRejected(
            f"the person chose {review.action!r} for {fn.question!r}",
            review_id=review.review_id,
            action=str(review.action),
            step_id=step_id,
        )
    return _accepted_value(fn, review.value, form, wrapped, step_id)
