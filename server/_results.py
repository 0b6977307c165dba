"""How the outcome of a run becomes an MCP tool result.

- succeeded: `structuredContent` (the flow output, as `{"result": value}` when it is not an object), the same JSON
  as text, and a link to the run's trace.
- failed: `isError`, with the error type, the step, the violated condition and the run id, plus the trace link.
- paused (a person must decide and this client cannot be asked, or steps are handed to the calling agent) and
  running (the call's time is up; the run goes on in the server): NOT `isError` (a pause is not a failure, and
  generic clients report error results as failures). The structured content is a run handle,
  `{"stratum_run": {"run_id", "flow", "status", "progress", "review"?, "agent_tasks"?, "next"}}`, which every flow
  tool's output schema admits besides the flow's output (see `_handles.py`). The text starts with
  "PAUSED (not failed)" or "RUNNING" and says what to do next: the agent steps to do and the `stratum_step_done`
  call that reports each, how to answer the person's decision (`stratum_resume` or `stratum review answer`), or
  how to wait for the result (`stratum_await`). `_meta` carries `stratum/status: paused|running`,
  `stratum/agent_tasks` (the handed-out steps as JSON) and `stratum/review_id`.
- rejected (an agent's report broke the step's contract): `isError`, "REJECTED (not failed)", the violations and
  the reports left; `_meta` `stratum/status: rejected`, `stratum/violations`, `stratum/retries_left`.

Every tool (flow tools, `stratum_step_done`, `stratum_run`, `stratum_resume`) answers pauses this one way, so a
client tells a pause from a failure by `_meta["stratum/status"]` (or the text's first word), never by `isError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import mcp.types as types

from server._agent_steps import AGENT_TASKS_META_KEY, agent_task_meta, agent_tasks_text, rejection_text
from stratum_core.engine import AgentTask, ReviewRequest

__all__ = [
    "HANDLE_KEY",
    "RUN_ID_META_KEY",
    "STATUS_META_KEY",
    "error_result",
    "failure_result",
    "paused_result",
    "rejected_result",
    "review_view",
    "run_link",
    "run_uri",
    "running_result",
    "success_result",
]

HANDLE_KEY = "stratum_run"
RUN_ID_META_KEY = "stratum/run_id"
STATUS_META_KEY = "stratum/status"
_DETAIL_LIMIT = 4000


def run_uri(run_id: str) -> str:
    """The resource URI of a run's trace."""
    return f"stratum://runs/{run_id}"


def run_link(run_id: str, flow: str | None = None) -> types.ResourceLink:
    """A resource link to a run's trace, for tool results."""
    what = f"run of '{flow}'" if flow else "run"
    return types.ResourceLink(
        uri=run_uri(run_id),
        name=f"run-{run_id}",
        title=f"Trace of the {what} {run_id}",
        description="Steps, attempts, violations, tokens, cost, durations and decisions of this run.",
        mime_type="application/json",
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def success_result(run_id: str, flow: str, structured: dict[str, Any] | None, output: Any) -> types.CallToolResult:
    """A finished run: the output as structured content and as text, and the trace link."""
    text = _dumps(structured if structured is not None else output)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text), run_link(run_id, flow)],
        structured_content=structured,
        is_error=False,
        _meta={RUN_ID_META_KEY: run_id},
    )


def _condition(error: Mapping[str, Any]) -> str | None:
    for key in ("condition", "expression"):
        if error.get(key):
            return str(error[key])
    violations = error.get("violations")
    if isinstance(violations, list) and violations:
        return "; ".join(str(v) for v in violations)
    return None


def failure_result(run_id: str, flow: str, error: Mapping[str, Any]) -> types.CallToolResult:
    """A failed (or cancelled) run: what failed, where, why, and where to read the trace."""
    kind = str(error.get("type") or "RunError")
    step = error.get("step_id")
    lines = [f"Flow '{flow}' failed: {kind}" + (f" at step '{step}'" if step else "")]
    if error.get("message"):
        lines.append(f"message: {error['message']}")
    condition = _condition(error)
    if condition:
        lines.append(f"violated: {condition}")
    lines.append(f"run_id: {run_id} (the trace is the resource {run_uri(run_id)})")
    details = {key: value for key, value in error.items() if key not in ("traceback", "history")}
    lines.append(_dumps(details)[:_DETAIL_LIMIT])
    return types.CallToolResult(
        content=[types.TextContent(type="text", text="\n".join(lines)), run_link(run_id, flow)],
        is_error=True,
        _meta={RUN_ID_META_KEY: run_id},
    )


def review_view(review: ReviewRequest) -> dict[str, Any]:
    """What a person (or the approval card) is shown of a decision: question, decision schema, options, context."""
    view: dict[str, Any] = {
        "review_id": review.review_id,
        "step_id": review.step_id,
        "question": review.question,
        "schema": dict(review.schema),
        "context": dict(review.context),
    }
    if review.options:
        view["options"] = list(review.options)
    if review.deadline is not None:
        view["deadline"] = review.deadline
    return view


def _handle(run_id: str, flow: str, status: str, **fields: Any) -> dict[str, Any]:
    return {HANDLE_KEY: {"run_id": run_id, "flow": flow, "status": status, **fields}}


def running_result(run_id: str, flow: str, progress: Mapping[str, Any], *, waited: float) -> types.CallToolResult:
    """A run still going when the call's time is up: a handle to follow it with (not an error)."""
    done, total = progress.get("steps_done"), progress.get("steps_total")
    where = f"{done}/{total} steps done" if total else "started"
    running = progress.get("running") or []
    if running:
        where += f"; running: {', '.join(map(str, running))}"
    next_text = (
        f'call stratum_await with {{"run_id": "{run_id}"}} to wait for its result (or stratum_status to look, '
        "stratum_cancel to stop it)"
    )
    text = (
        f"RUNNING (not failed): flow '{flow}' is still running after {waited:g} s ({where}); it goes on in the "
        f"server. To get its result, {next_text}.\nrun_id: {run_id} (the trace is the resource {run_uri(run_id)})"
    )
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text), run_link(run_id, flow)],
        structured_content=_handle(run_id, flow, "running", progress=dict(progress), next=next_text),
        is_error=False,
        _meta={RUN_ID_META_KEY: run_id, STATUS_META_KEY: "running"},
    )


def paused_result(
    run_id: str,
    flow: str,
    review: ReviewRequest | None,
    *,
    reason: str,
    agent_tasks: Sequence[AgentTask] = (),
    prefix: str | None = None,
    progress: Mapping[str, Any] | None = None,
) -> types.CallToolResult:
    """A paused run: the steps handed to the calling agent, and/or the decision it waits for and how to answer it.

    Not an error: the structured content is the run's handle. `prefix` is a first paragraph (e.g. "Accepted: ..."
    when a report moved the run on to its next steps).
    """
    paragraphs = [prefix] if prefix else []
    if agent_tasks:
        paragraphs += agent_tasks_text(flow, agent_tasks)
    lines: list[str] = []
    if review is not None:
        if agent_tasks:
            lines.append(f"The run also waits for a person's decision; {reason}.")
        else:
            lines.append(f"PAUSED (not failed): flow '{flow}' is waiting for a person's decision; {reason}.")
        lines += [
            f"question: {review.question}",
            f"review_id: {review.review_id}",
            f"decision schema: {_dumps(dict(review.schema))}",
        ]
        if review.context:
            lines.append(f"context: {_dumps(dict(review.context))[:_DETAIL_LIMIT]}")
        lines += [
            "To resume: ask the person, then call the tool stratum_resume with "
            f'{{"review_id": "{review.review_id}", "answer": <their decision>}} '
            '(or "action": "decline"), or run on the command line: '
            f"stratum review answer {review.review_id} --value '<JSON>'",
        ]
    elif not agent_tasks:
        lines.append(f"PAUSED (not failed): flow '{flow}' is waiting.")
    lines.append(f"run_id: {run_id} (the trace is the resource {run_uri(run_id)})")
    paragraphs.append("\n".join(lines))
    meta: dict[str, Any] = {RUN_ID_META_KEY: run_id, STATUS_META_KEY: "paused"}
    if review is not None:
        next_text = lines[-2]
    elif agent_tasks:
        next_text = "do each step in agent_tasks and report it with stratum_step_done"
    else:
        next_text = f'call stratum_await with {{"run_id": "{run_id}"}} to continue it and wait for its result'
    handle: dict[str, Any] = {"next": next_text}
    if progress is not None:
        handle["progress"] = dict(progress)
    if review is not None:
        meta["stratum/review_id"] = review.review_id
        handle["review"] = review_view(review)
        handle["waiting_for"] = "person"
    if agent_tasks:
        meta[AGENT_TASKS_META_KEY] = [agent_task_meta(task) for task in agent_tasks]
        handle["agent_tasks"] = meta[AGENT_TASKS_META_KEY]
        handle.setdefault("waiting_for", "agent")
    return types.CallToolResult(
        content=[types.TextContent(type="text", text="\n\n".join(paragraphs)), run_link(run_id, flow)],
        structured_content=_handle(run_id, flow, "paused", **handle),
        is_error=False,
        _meta=meta,
    )


def rejected_result(
    run_id: str, flow: str, step_id: str, violations: Sequence[str], retries_left: int
) -> types.CallToolResult:
    """An agent's report that breaks the step's contract: what is wrong and how many reports are left.

    `isError`, like a pause: the run waits for the same step again.
    """
    return types.CallToolResult(
        content=[
            types.TextContent(type="text", text=rejection_text(run_id, step_id, violations, retries_left)),
            run_link(run_id, flow),
        ],
        is_error=True,
        _meta={
            RUN_ID_META_KEY: run_id,
            STATUS_META_KEY: "rejected",
            "stratum/step_id": step_id,
            "stratum/violations": list(violations),
            "stratum/retries_left": retries_left,
        },
    )


def error_result(message: str, *, run_id: str | None = None, flow: str | None = None) -> types.CallToolResult:
    """An error the model can read: bad arguments, a configuration problem, an internal error."""
    content: list[types.ContentBlock] = [types.TextContent(type="text", text=message)]
    if run_id is not None:
        content.append(run_link(run_id, flow))
    return types.CallToolResult(
        content=content, is_error=True, _meta={RUN_ID_META_KEY: run_id} if run_id is not None else None
    )
