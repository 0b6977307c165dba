"""How the outcome of a run becomes an MCP tool result.

- succeeded: `structuredContent` (the flow output, as `{"result": value}` when it is not an object), the same JSON
  as text, and a link to the run's trace.
- failed: `isError`, with the error type, the step, the violated condition and the run id, plus the trace link.
- paused (a person must decide and this client cannot be asked, or steps are handed to the calling agent):
  `isError` too, because the flow's output does not exist yet and a tool with an output schema may not answer
  without it (the SDK client refuses a non-error result without valid structured content); the text starts with
  "PAUSED (not failed)" and says what to do next: the agent steps to do and the `stratum_step_done` call that
  reports each, and/or how to answer the person's decision (`stratum_resume` or `stratum review answer`).
  `_meta` carries `stratum/status: paused`, `stratum/agent_tasks` (the handed-out steps as JSON) and
  `stratum/review_id`.
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
    "RUN_ID_META_KEY",
    "STATUS_META_KEY",
    "error_result",
    "failure_result",
    "paused_result",
    "rejected_result",
    "run_link",
    "run_uri",
    "success_result",
]

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


def paused_result(
    run_id: str,
    flow: str,
    review: ReviewRequest | None,
    *,
    reason: str,
    agent_tasks: Sequence[AgentTask] = (),
    prefix: str | None = None,
) -> types.CallToolResult:
    """A paused run: the steps handed to the calling agent, and/or the decision it waits for and how to answer it.

    `prefix` is a first paragraph (e.g. "Accepted: ..." when a report moved the run on to its next steps).
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
        meta["stratum/review_id"] = review.review_id
    if agent_tasks:
        meta[AGENT_TASKS_META_KEY] = [agent_task_meta(task) for task in agent_tasks]
    return types.CallToolResult(
        content=[types.TextContent(type="text", text="\n\n".join(paragraphs)), run_link(run_id, flow)],
        is_error=True,
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
