"""Run handles: how a client that has no MCP tasks follows a run that outlives its tool call.

A flow call waits up to `--wait` seconds; a run still going then is answered with a handle (see `_results.py`), and
the run goes on in the server. Three tools follow it: `stratum_status` (where it is), `stratum_await` (wait for it,
bounded, and get the flow's typed result exactly as the direct call would have returned it), `stratum_cancel`.
Finished results stay in the run store, so they are readable after a restart (and as `stratum://runs/{id}`).

Pauses are not failures: a paused or running answer is a normal result whose structured content is the handle. So
that it still matches the tool's declared output schema, a flow tool advertises `anyOf: [flow output, handle]`; the
finished flow's output is unchanged and matches it too (`with_handle`).
"""

from __future__ import annotations

from typing import Any

import mcp.types as types

from server._results import HANDLE_KEY

__all__ = [
    "AWAIT_TOOL",
    "CANCEL_TOOL",
    "HANDLE_SCHEMA",
    "HANDLE_TOOLS",
    "HANDLE_TOOL_INPUTS",
    "STATUS_TOOL",
    "with_handle",
]

STATUS_TOOL = "stratum_status"
AWAIT_TOOL = "stratum_await"
CANCEL_TOOL = "stratum_cancel"

_PROGRESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "steps_done": {"type": "integer"},
        "steps_total": {"type": "integer"},
        "running": {"type": "array", "items": {"type": "string"}},
        "cost_usd": {"type": "number"},
        "tokens_in": {"type": "integer"},
        "tokens_out": {"type": "integer"},
    },
}

HANDLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Stratum run handle",
    "description": "The run has not finished: it is running in the server, or paused for a person or the agent. "
    "Follow it with stratum_await(run_id) (or answer its review with stratum_resume).",
    "properties": {
        HANDLE_KEY: {
            "type": "object",
            "properties": {
                "run_id": {"type": "string"},
                "flow": {"type": "string"},
                "status": {"type": "string", "enum": ["running", "paused"]},
                "waiting_for": {"type": "string", "enum": ["person", "agent"]},
                "progress": _PROGRESS_SCHEMA,
                "review": {
                    "type": "object",
                    "properties": {
                        "review_id": {"type": "string"},
                        "step_id": {"type": "string"},
                        "question": {"type": "string"},
                        "schema": {"type": "object"},
                        "context": {"type": "object"},
                        "options": {"type": "array"},
                        "deadline": {"type": "number"},
                    },
                    "required": ["review_id", "question", "schema"],
                },
                "agent_tasks": {"type": "array", "items": {"type": "object"}},
                "next": {"type": "string"},
            },
            "required": ["run_id", "status"],
        }
    },
    "required": [HANDLE_KEY],
}


def with_handle(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """A flow tool's advertised output schema: the flow's output, or a run handle (`$defs` and `$schema` hoisted)."""
    if schema is None:
        return None
    inner = dict(schema)
    dialect = inner.pop("$schema", None)
    defs = inner.pop("$defs", None)
    out: dict[str, Any] = {"type": "object", "anyOf": [inner, HANDLE_SCHEMA]}
    if dialect:
        out = {"$schema": dialect, **out}
    if defs:
        out["$defs"] = defs
    return out


_RUN_ID: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 128, "description": "The run's id."}

HANDLE_TOOL_INPUTS: dict[str, dict[str, Any]] = {
    STATUS_TOOL: {
        "type": "object",
        "properties": {"run_id": _RUN_ID},
        "required": ["run_id"],
        "additionalProperties": False,
    },
    AWAIT_TOOL: {
        "type": "object",
        "properties": {
            "run_id": _RUN_ID,
            "timeout": {
                "type": "number",
                "minimum": 0,
                "description": "Seconds to wait at most (default: the server's --wait; at most 3600); 0 only looks.",
            },
        },
        "required": ["run_id"],
        "additionalProperties": False,
    },
    CANCEL_TOOL: {
        "type": "object",
        "properties": {"run_id": _RUN_ID},
        "required": ["run_id"],
        "additionalProperties": False,
    },
}


def _tool(
    name: str, title: str, description: str, *, read_only: bool, idempotent: bool, destructive: bool = False
) -> types.Tool:
    return types.Tool(
        name=name,
        title=title,
        description=description,
        input_schema=HANDLE_TOOL_INPUTS[name],
        annotations=types.ToolAnnotations(
            title=title,
            read_only_hint=read_only,
            destructive_hint=destructive,
            idempotent_hint=idempotent,
            open_world_hint=False,
        ),
    )


HANDLE_TOOLS: list[types.Tool] = [
    _tool(
        STATUS_TOOL,
        "Status of a Stratum run",
        "Where a run is: running (steps done of total, the steps running now, cost so far), paused (the decision "
        "it waits for), or finished (its output or error). Does not wait.",
        read_only=True,
        idempotent=True,
    ),
    _tool(
        AWAIT_TOOL,
        "Wait for a Stratum run",
        "Wait (up to `timeout` seconds, bounded by the server) for a run that answered with a handle, and return "
        "its result exactly as the flow's own tool would have: the flow's output when it finished, the failure "
        "when it failed, or the handle again while it still runs or waits. A decision the run waits for is asked "
        "through the client's form when it has one.",
        read_only=False,
        idempotent=True,
    ),
    _tool(
        CANCEL_TOOL,
        "Cancel a Stratum run",
        "Stop a running or paused run; it is recorded as cancelled (its finished steps stay in its trace).",
        read_only=False,
        idempotent=True,
        destructive=True,
    ),
]
