"""The reference's reply shapes, read from a run in our store: dispatches, completion, errors, the audit.

Every reply is built from what the store holds (the run, its step records, its reviews), so a reply after a restart
is the same as before it. Shapes follow the reference server field by field (REFERENCE-IR.md §3.1-3.4):

- `execute_step`: `{status, flow_id, step_number, total_steps, step_id, step_mode, agent, intent, inputs,
  output_contract, output_fields, ensure, retries_remaining}` (+ `function`, `mode` for function steps, `model` for
  inline steps; + `iteration`, `max_iterations`, `exit_criterion` for a step with iterations);
- `await_gate`: `{status, flow_id, step_number, total_steps, step_id, step_mode, function, agent, on_approve,
  on_revise, on_kill, timeout}`;
- `parallel_dispatch`: `{status, flow_id, step_number, total_steps, step_id, step_mode, tasks, max_concurrent,
  isolation, require, merge, intent_template}`;
- completion: `{status: complete|killed, flow_id, output, trace, total_duration_ms}`;
- errors: `{status: "error", error_type, message}`.

Step ids are the plan's: a step run again in a later round (`draft@2`) or an iteration (`work#3`) is `draft` /
`work` to the agent; a step of a sub-flow keeps its path (`child.step`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server._reference_tools._spec import RawStep, ReferenceSpec, spec_of
from stratum_core.store import ReviewRecord, RunRecord, RunStore, StepRecord

__all__ = [
    "Current",
    "audit",
    "completion",
    "current_of",
    "dispatch",
    "error_reply",
    "reference_id",
    "rejected",
    "violation_status",
]

_PARTS = re.compile(r"@\d+|#\d+|\[[^\]]*\]")
_ITERATION = re.compile(r"#(\d+)$")
_FINISHED = ("succeeded", "skipped", "failed")


def reference_id(path: str) -> str:
    """The plan's step id for a recorded path: `draft@2` -> `draft`, `work#3` -> `work`, `fan[t1]` -> `fan`."""
    return _PARTS.sub("", path)


def error_reply(error_type: str, message: str, **extra: Any) -> dict[str, Any]:
    """A reference domain error: `{status: "error", error_type, message}` (+ what helps, e.g. `step_id`)."""
    return {"status": "error", "error_type": error_type, "message": message, **extra}


def violation_status(violations: Sequence[str]) -> str:
    """The reference's status for a rejected result: schema_failed, guardrail_blocked or ensure_failed."""
    if any(v.startswith(("schema", "output_schema")) for v in violations):
        return "schema_failed"
    if any(v.startswith("guardrail") for v in violations):
        return "guardrail_blocked"
    return "ensure_failed"


@dataclass(frozen=True)
class Current:
    """Where a paused reference run stands: the gate it waits at, or the agent steps it waits for."""

    review: ReviewRecord | None
    waiting: tuple[StepRecord, ...]

    @property
    def step_id(self) -> str | None:
        """The plan's id of the step the run waits at, if any."""
        if self.review is not None:
            return reference_id(self.review.step_id)
        return reference_id(self.waiting[0].step_id) if self.waiting else None


def current_of(store: RunStore, run_id: str) -> Current:
    """What a run waits for now (nothing, when it is not paused)."""
    pending = store.list_reviews(status="pending", run_id=run_id)
    waiting = [
        step
        for step in store.get_steps(run_id)
        if step.status == "waiting" and "agent" in (step.attributes.get("awaiting") or [])  # type: ignore[operator]
    ]
    paths = [step.step_id for step in waiting]
    innermost = tuple(  # an iteration, a task fan-out or a sub-flow waits on its own parts: those are handed out
        step
        for step in waiting
        if not any(p.startswith((f"{step.step_id}#", f"{step.step_id}[", f"{step.step_id}.")) for p in paths)
    )
    return Current(review=pending[0] if pending else None, waiting=innermost)


def _duration(run: RunRecord) -> float:
    end = run.finished_at if run.finished_at is not None else time.time()
    return round((end - run.created_at) * 1000, 3)


def _attempts_used(store: RunStore, run_id: str, path: str) -> int:
    trace = store.get_trace(run_id)
    return sum(1 for attempt in trace.attempts if attempt.step_id == path) if trace is not None else 0


def _base(run: RunRecord, spec: ReferenceSpec, step: RawStep) -> dict[str, Any]:
    return {
        "flow_id": run.run_id,
        "step_number": step.number,
        "total_steps": spec.total_steps,
        "step_id": step.id,
        "step_mode": step.mode,
    }


def _execute_step(store: RunStore, run: RunRecord, top: ReferenceSpec, record: StepRecord) -> dict[str, Any]:
    step_id = reference_id(record.step_id)
    found = top.locate(step_id)
    if found is None:  # not a step of the plan's text (cannot happen for a plan that loaded): its record says it
        return {
            "status": "execute_step",
            "flow_id": run.run_id,
            "step_id": step_id,
            "step_mode": "function",
            "function": record.function,
            "inputs": record.input,
            "retries_remaining": None,
        }
    spec, step = found
    contract = step.output_contract
    reply: dict[str, Any] = {
        "status": "execute_step",
        **_base(run, spec, step),
        "step_id": step_id,  # a sub-flow's step keeps its path (`sub.inner`)
        "agent": step.raw.get("agent"),
        "intent": step.intent,
        "inputs": record.input if record.input is not None else {},
        "output_contract": contract,
        "output_fields": spec.output_fields(contract),
        "ensure": step.ensure,
        "retries_remaining": max(0, step.attempts - _attempts_used(store, run.run_id, record.step_id)),
    }
    if step.mode == "function":
        reply["function"] = step.raw.get("function")
        reply["mode"] = step.function.get("mode")
    elif step.mode == "inline":
        reply["model"] = step.raw.get("model")
    iteration = _ITERATION.search(record.step_id)
    if iteration is not None:
        reply["iteration"] = int(iteration.group(1))
        reply["max_iterations"] = step.raw.get("max_iterations")
        reply["exit_criterion"] = step.raw.get("exit_criterion")
    return reply


def _await_gate(run: RunRecord, top: ReferenceSpec, review: ReviewRecord) -> dict[str, Any]:
    step_id = reference_id(review.step_id)
    found = top.locate(step_id)
    reply: dict[str, Any] = {"status": "await_gate"}
    if found is None:
        return {**reply, "flow_id": run.run_id, "step_id": step_id, "step_mode": "function", "timeout": None}
    spec, step = found
    reply.update(
        {
            **_base(run, spec, step),
            "step_id": step_id,
            "function": step.raw.get("function"),
            "agent": step.raw.get("agent"),
            "on_approve": step.raw.get("on_approve"),
            "on_revise": step.raw.get("on_revise"),
            "on_kill": step.raw.get("on_kill"),
            "timeout": step.function.get("timeout"),
        }
    )
    if not step.is_gate:  # a human step of a version "1" plan: a decision of its own shape, not a gate's outcome
        reply.update(
            review_id=review.review_id,
            question=review.question,
            decision_schema=review.request.get("schema"),
            answer_with="stratum_resume(review_id, answer)",
        )
    return reply


def _parallel(store: RunStore, run: RunRecord, spec: ReferenceSpec, step: RawStep, path: str) -> dict[str, Any]:
    record = next((s for s in store.get_steps(run.run_id) if s.step_id == path), None)
    tasks = record.input.get("tasks") if record is not None and isinstance(record.input, Mapping) else None
    raw = step.raw
    return {
        "status": "parallel_dispatch",
        **_base(run, spec, step),
        "tasks": tasks if isinstance(tasks, list) else [],
        "max_concurrent": raw.get("max_concurrent", 3),
        "isolation": raw.get("isolation"),
        "require": raw.get("require", "all"),
        "merge": raw.get("merge"),
        "intent_template": raw.get("intent_template"),
    }


def dispatch(store: RunStore, run: RunRecord) -> dict[str, Any]:
    """The reply that says what to do next in `run`: a dispatch, the completion, or an error."""
    if run.status != "paused":
        return completion(store, run)
    spec = spec_of(run.plan_text, run.flow)
    now = current_of(store, run.run_id)
    if now.review is not None:
        return _await_gate(run, spec, now.review)
    if not now.waiting:
        return error_reply("execution_error", f"flow {run.run_id} is paused but waits for no step (resume it)")
    first = now.waiting[0]
    step = spec.find(reference_id(first.step_id))
    if step is not None and step.mode == "parallel_dispatch":
        return _parallel(store, run, spec, step, first.step_id.split("[", 1)[0])
    return _execute_step(store, run, spec, first)


def rejected(store: RunStore, run: RunRecord, path: str, violations: Sequence[str], retries: int) -> dict[str, Any]:
    """The reply to a result that broke its checks: the same step again, with the violations."""
    record = next((s for s in store.get_steps(run.run_id) if s.step_id == path), None)
    spec = spec_of(run.plan_text, run.flow)
    base = (
        _execute_step(store, run, spec, record)
        if record is not None
        else {"flow_id": run.run_id, "step_id": reference_id(path)}
    )
    status = violation_status(violations)
    return {**base, "status": status, "violations": list(violations), "retries_remaining": retries}


def completion(store: RunStore, run: RunRecord) -> dict[str, Any]:
    """A finished run: `{status: complete|killed, flow_id, output, trace, total_duration_ms}`, or an error."""
    error = run.error or {}
    if run.status == "succeeded" or (run.status == "failed" and error.get("type") == "GateKilled"):
        killed = run.status != "succeeded"
        report = audit(store, run)
        reply: dict[str, Any] = {
            "status": "killed" if killed else "complete",
            "flow_id": run.run_id,
            "output": None if killed else run.output,
            "trace": report["trace"],
            "total_duration_ms": report["total_duration_ms"],
        }
        return reply
    if run.status in ("running", "pending"):
        return error_reply("flow_busy", f"flow {run.run_id} is being advanced right now; call stratum_resume again")
    message = str(error.get("message") or f"the flow ended {run.status}")
    if error.get("type") == "PostconditionFailed":
        return error_reply(
            "retries_exhausted", message, flow_id=run.run_id, step_id=reference_id(str(error.get("step_id") or ""))
        )
    if error.get("type") == "RoutingLimitExceeded":
        return error_reply("max_rounds_exceeded", message, flow_id=run.run_id)
    return error_reply("execution_error", message, flow_id=run.run_id, status_of_flow=run.status)


# -- the audit ---------------------------------------------------------------------------------------------------


def _record(spec: ReferenceSpec, step: StepRecord, reviews: Mapping[str, ReviewRecord]) -> dict[str, Any]:
    step_id = reference_id(step.step_id)
    raw = spec.find(step_id)
    attributes = step.attributes
    if "effective_policy" in attributes:
        output = step.output if isinstance(step.output, Mapping) else {}
        return {
            "type": "policy",
            "step_id": step_id,
            "effective_policy": attributes["effective_policy"],
            "resolved_outcome": "approve",
            "rationale": output.get("rationale"),
        }
    if step.status == "skipped":
        reason = attributes.get("skip_reason") or ("skip_if" if "when" in attributes else "skipped")
        return {"type": "skip", "step_id": step_id, "skip_reason": reason}
    if raw is not None and raw.is_gate and step.status == "succeeded":
        output = step.output if isinstance(step.output, Mapping) else {}
        review = reviews.get(step.step_id)
        timed_out = review is not None and review.status == "timed_out"
        return {
            "type": "gate",
            "step_id": step_id,
            "outcome": output.get("outcome"),
            "rationale": output.get("rationale"),
            "resolved_by": "system" if timed_out else (review.reviewer if review is not None else None),
            "duration_ms": step.duration_ms,
        }
    return {
        "type": "step",
        "step_id": step_id,
        "function_name": step.function if raw is None or raw.mode == "function" else None,
        "attempts": step.attempts,
        "duration_ms": step.duration_ms,
        "agent": raw.raw.get("agent") if raw is not None else None,
        "step_mode": raw.mode if raw is not None else step.kind,
        "child_flow_id": None,
    }


def audit(store: RunStore, run: RunRecord) -> dict[str, Any]:
    """The reference's audit snapshot of a run (REFERENCE-IR.md §3.4), with `status: failed` where it ended so."""
    spec = spec_of(run.plan_text, run.flow)
    reviews = {review.step_id: review for review in store.list_reviews(status=None, run_id=run.run_id)}
    steps = sorted(
        (s for s in store.get_steps(run.run_id) if s.status in _FINISHED),
        key=lambda s: (s.started_at or 0.0, s.finished_at or 0.0),
    )
    round_number, round_start = 1, None
    rounds: list[dict[str, Any]] = []
    active: list[dict[str, Any]] = []
    iterations: dict[str, list[dict[str, Any]]] = {}
    archived: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        if "." in step.step_id or "[" in step.step_id:
            continue
        iteration = _ITERATION.search(step.step_id)
        if iteration is not None:
            entry = {"iteration": int(iteration.group(1)), "status": step.status, "duration_ms": step.duration_ms}
            iterations.setdefault(reference_id(step.step_id), []).append(entry)
            continue
        record = {**_record(spec, step, reviews), "round": round_number, "round_start_step_id": round_start}
        active.append(record)
        if record["type"] == "gate" and record["outcome"] == "revise":
            rounds.append({"round": round_number, "steps": active})
            for key, entries in iterations.items():
                archived.setdefault(key, []).extend(entries)
            active, iterations = [], {}
            raw = spec.step(record["step_id"])
            round_number, round_start = round_number + 1, raw.raw.get("on_revise") if raw is not None else None
    status = {"succeeded": "complete", "paused": "in_progress", "running": "in_progress", "pending": "in_progress"}
    state = status.get(run.status, "failed")
    if run.status == "failed" and (run.error or {}).get("type") == "GateKilled":
        state = "killed"
    return {
        "flow_id": run.run_id,
        "flow_name": run.flow,
        "status": state,
        "steps_completed": len(active),
        "total_steps": spec.total_steps,
        "trace": active,
        "rounds": rounds,
        "iterations": iterations,
        "archived_iterations": archived,
        "child_audits": {},
        "total_duration_ms": _duration(run),
    }
