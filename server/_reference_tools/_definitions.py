"""The reference's controller tools as MCP tool definitions: their names, argument names and descriptions.

Argument names are the reference's (`flow_id`, `step_id`, `result`, `outcome`, `rationale`, `resolved_by`, ...).
Outcomes and statuses are plain strings, as there: a wrong one gets the reference's domain error
(`invalid_outcome`, ...) rather than a schema refusal. `stratum_resume` and `stratum_step_done` are also our own
tools; with reference tools on, their schemas accept both argument shapes (see `merged_schema`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp.types as types

__all__ = [
    "AUDIT",
    "CHECK_TIMEOUTS",
    "GATE_RESOLVE",
    "ITERATION_ABORT",
    "ITERATION_REPORT",
    "ITERATION_START",
    "LIST_WORKFLOWS",
    "PARALLEL_DONE",
    "PLAN",
    "REFERENCE_ONLY",
    "REFERENCE_TOOL_DEFS",
    "REPORTS",
    "RESUME",
    "SHARED",
    "SKIP_STEP",
    "STEP_DONE",
    "merged_schema",
    "reference_input",
]

PLAN = "stratum_plan"
STEP_DONE = "stratum_step_done"
RESUME = "stratum_resume"
GATE_RESOLVE = "stratum_gate_resolve"
AUDIT = "stratum_audit"
SKIP_STEP = "stratum_skip_step"
PARALLEL_DONE = "stratum_parallel_done"
ITERATION_START = "stratum_iteration_start"
ITERATION_REPORT = "stratum_iteration_report"
ITERATION_ABORT = "stratum_iteration_abort"
CHECK_TIMEOUTS = "stratum_check_timeouts"
LIST_WORKFLOWS = "stratum_list_workflows"

SHARED = frozenset({STEP_DONE, RESUME})
"""Tools both we and the reference have: a call with `flow_id` is the reference's, any other is ours."""
REPORTS = frozenset({STEP_DONE, ITERATION_REPORT, PARALLEL_DONE})
"""Tools that carry an agent's result (held to the server's `max_report_bytes`)."""

_FLOW_ID = {"type": "string", "minLength": 1, "description": "The flow_id that stratum_plan answered with."}
_STEP_ID = {"type": "string", "minLength": 1, "description": "The step_id of the dispatch."}
_RESULT = {"type": "object", "description": "The step's result: an object with the fields of its output_contract."}


def _schema(properties: Mapping[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": dict(properties), "required": required}


def _tool(name: str, title: str, description: str, schema: dict[str, Any], *, read_only: bool = False) -> types.Tool:
    return types.Tool(
        name=name,
        title=title,
        description=description,
        input_schema=schema,
        annotations=types.ToolAnnotations(
            title=title, read_only_hint=read_only, destructive_hint=False, idempotent_hint=read_only
        ),
    )


_DISPATCH = (
    "Answers the next dispatch: execute_step (do the step, then stratum_step_done), await_gate "
    "(stratum_gate_resolve), parallel_dispatch (stratum_parallel_done), or the flow's completion {status: complete|"
    "killed, output, trace}. Errors are {status: error, error_type, message}."
)
_REFERENCE_INPUTS: dict[str, dict[str, Any]] = {
    PLAN: _schema(
        {
            "spec": {"type": "string", "minLength": 1, "description": "The .stratum.yaml plan, as YAML text."},
            "flow": {"type": "string", "minLength": 1, "description": "The flow to run."},
            "inputs": {"type": "object", "description": "The flow's inputs.", "default": {}},
        },
        ["spec", "flow"],
    ),
    GATE_RESOLVE: _schema(
        {
            "flow_id": _FLOW_ID,
            "step_id": _STEP_ID,
            "outcome": {"type": "string", "description": "approve, revise or kill."},
            "rationale": {"type": "string", "description": "Why."},
            "resolved_by": {"type": "string", "description": "human, agent or system.", "default": "human"},
        },
        ["flow_id", "step_id", "outcome"],
    ),
    AUDIT: _schema({"flow_id": _FLOW_ID}, ["flow_id"]),
    CHECK_TIMEOUTS: _schema({"flow_id": _FLOW_ID}, ["flow_id"]),
    SKIP_STEP: _schema(
        {"flow_id": _FLOW_ID, "step_id": _STEP_ID, "reason": {"type": "string", "description": "Why it is skipped."}},
        ["flow_id", "step_id"],
    ),
    PARALLEL_DONE: _schema(
        {
            "flow_id": _FLOW_ID,
            "step_id": _STEP_ID,
            "task_results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "task_id": {"type": ["string", "integer"]},
                        "result": {},
                        "status": {"type": "string", "description": "complete or failed."},
                    },
                    "required": ["task_id"],
                },
            },
            "merge_status": {"type": "string", "description": "clean or conflict.", "default": "clean"},
        },
        ["flow_id", "step_id", "task_results"],
    ),
    ITERATION_START: _schema({"flow_id": _FLOW_ID, "step_id": _STEP_ID}, ["flow_id", "step_id"]),
    ITERATION_REPORT: _schema({"flow_id": _FLOW_ID, "step_id": _STEP_ID, "result": _RESULT}, ["flow_id", "step_id"]),
    ITERATION_ABORT: _schema(
        {"flow_id": _FLOW_ID, "step_id": _STEP_ID, "reason": {"type": "string"}}, ["flow_id", "step_id"]
    ),
    LIST_WORKFLOWS: _schema(
        {
            "workflows_dir": {
                "type": "string",
                "description": "A folder of plans inside the server's plans folder (default: the plans folder).",
            }
        },
        [],
    ),
}
REFERENCE_ONLY = frozenset(_REFERENCE_INPUTS)

REFERENCE_TOOL_DEFS: list[types.Tool] = [
    _tool(
        PLAN,
        "Start a Stratum plan (reference)",
        f"Start a flow of a plan given as YAML text. {_DISPATCH}",
        _REFERENCE_INPUTS[PLAN],
    ),
    _tool(
        GATE_RESOLVE,
        "Resolve a Stratum gate (reference)",
        f"Decide the gate a flow waits at (await_gate): approve, revise (back to its on_revise step, a new round) or "
        f"kill. {_DISPATCH}",
        _REFERENCE_INPUTS[GATE_RESOLVE],
    ),
    _tool(
        AUDIT,
        "Audit a Stratum flow (reference)",
        "The flow's audit: {flow_id, flow_name, status, steps_completed, total_steps, trace, rounds, iterations, "
        "archived_iterations, child_audits, total_duration_ms}. The full trace is the resource stratum://runs/{flow_id}.",
        _REFERENCE_INPUTS[AUDIT],
        read_only=True,
    ),
    _tool(
        CHECK_TIMEOUTS,
        "Check a Stratum gate's timeout (reference)",
        "If the gate the flow waits at is past its timeout, kill it (or route to on_kill). Answers no_timeout with "
        "remaining_seconds, or the flow after the kill.",
        _REFERENCE_INPUTS[CHECK_TIMEOUTS],
    ),
    _tool(
        SKIP_STEP,
        "Skip a Stratum step (reference)",
        f"Skip the current (non-gate) step. {_DISPATCH}",
        _REFERENCE_INPUTS[SKIP_STEP],
    ),
    _tool(
        PARALLEL_DONE,
        "Report parallel tasks (reference)",
        f"Report the results of a parallel_dispatch's tasks: [{{task_id, result, status: complete|failed}}]. "
        f"{_DISPATCH}",
        _REFERENCE_INPUTS[PARALLEL_DONE],
    ),
    _tool(
        ITERATION_START,
        "Start an iteration loop (reference)",
        "Start the iterations of the current step (one with max_iterations). Answers iteration_started.",
        _REFERENCE_INPUTS[ITERATION_START],
    ),
    _tool(
        ITERATION_REPORT,
        "Report an iteration (reference)",
        "Report one iteration's result. Answers iteration_continue (do another) or iteration_exit (with "
        "final_result and the outcome); then report the step with stratum_step_done.",
        _REFERENCE_INPUTS[ITERATION_REPORT],
    ),
    _tool(
        ITERATION_ABORT,
        "Abort an iteration loop (reference)",
        "Stop the current step's iterations (outcome exit_abort). Answers iteration_aborted.",
        _REFERENCE_INPUTS[ITERATION_ABORT],
    ),
    _tool(
        LIST_WORKFLOWS,
        "List Stratum workflows (reference)",
        "The plans with a workflow block: {workflows: [{name, description, input, path}], errors}.",
        _REFERENCE_INPUTS[LIST_WORKFLOWS],
        read_only=True,
    ),
]

_SHARED_REFERENCE_PROPERTIES: dict[str, dict[str, Any]] = {
    STEP_DONE: {"flow_id": _FLOW_ID, "result": _RESULT},
    RESUME: {"flow_id": _FLOW_ID},
}
_SHARED_NOTES = {
    STEP_DONE: " Reference clients: call it with flow_id, step_id and result instead (stratum_plan's flows).",
    RESUME: " Reference clients: call it with flow_id alone for the flow's current dispatch (stratum_plan's flows).",
}


def merged_schema(tool: types.Tool) -> types.Tool:
    """Our `stratum_resume` / `stratum_step_done` also taking the reference's arguments (`flow_id`, `result`).

    The merged schema requires nothing beyond what both shapes share; each shape's own fields are checked when the
    call is dispatched (a call with `flow_id` is the reference's).
    """
    schema = dict(tool.input_schema)
    properties = {**schema.get("properties", {}), **_SHARED_REFERENCE_PROPERTIES[tool.name]}
    shared_required = [key for key in schema.get("required", []) if key == "step_id"]
    merged = {**schema, "properties": properties, "required": shared_required}
    return tool.model_copy(
        update={"input_schema": merged, "description": (tool.description or "") + _SHARED_NOTES[tool.name]}
    )


def reference_input(name: str) -> Mapping[str, Any] | None:
    """The input schema of a reference-only tool, or None."""
    return _REFERENCE_INPUTS.get(name)
