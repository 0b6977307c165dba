"""Ad-hoc plans written by the calling agent: the `stratum_validate` and `stratum_run` tools.

Such a plan is untrusted text. It is loaded with `untrusted=True`: compute `call:` targets are refused (nothing is
imported; expressions run in the sandbox), its size, functions, flows, steps and calls per step are bounded by
the loader, its JSON Schema patterns must run in RE2, and its infer functions may name only the server's configured
models (checked when it is validated or loaded, and again when a step runs). Its runs are recorded like any
other, under a source name made from the text's hash
(`<agent plan 1a2b3c4d>`), so the trace resources, `stratum runs` and resuming work the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from typing import Any

import mcp.types as types

from stratum_core.errors import PlanError, Problem, StratumError
from stratum_core.plan import Plan, load_plan_text

__all__ = [
    "RUN_INPUT",
    "RUN_TOOL",
    "RUN_TOOL_DEF",
    "VALIDATE_INPUT",
    "VALIDATE_OUTPUT",
    "VALIDATE_TOOL",
    "VALIDATE_TOOL_DEF",
    "agent_plan_source",
    "choose_flow",
    "load_agent_plan",
    "problems_text",
    "validation_report",
]

VALIDATE_TOOL = "stratum_validate"
RUN_TOOL = "stratum_run"
_PLAN_FIELD: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": "The plan's YAML text (the .stratum.yaml language, version 1 or 0.1). Compute functions use "
    "`expr:` expressions; `call:` (Python code) is refused in plans sent by a client.",
}

VALIDATE_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {"plan": _PLAN_FIELD},
    "required": ["plan"],
    "additionalProperties": False,
}
_PROBLEM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "line": {"type": "integer"},
        "column": {"type": "integer"},
        "path": {"type": "string"},
        "message": {"type": "string"},
        "hint": {"type": "string", "description": "What to do about it, when there is a hint."},
    },
    "required": ["line", "column", "path", "message"],
}
VALIDATE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "valid": {"type": "boolean"},
        "problems": {"type": "array", "items": _PROBLEM},
        "flows": {"type": "array", "items": {"type": "string"}, "description": "The plan's flows, when it is valid."},
        "more": {"type": "integer", "description": "Problems found beyond those listed, when there were too many."},
    },
    "required": ["valid", "problems", "flows"],
}
VALIDATE_TOOL_DEF = types.Tool(
    name=VALIDATE_TOOL,
    title="Check a Stratum plan",
    description=(
        "Check a Stratum plan you wrote (YAML text) without running it. Answers {valid, problems: [{line, column, "
        "path, message, hint}], flows}: every problem at once, located in the text. Run a valid plan with "
        "stratum_run."
    ),
    input_schema=VALIDATE_INPUT,
    output_schema=VALIDATE_OUTPUT,
    annotations=types.ToolAnnotations(
        title="Check a Stratum plan",
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=False,
    ),
)

RUN_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "plan": _PLAN_FIELD,
        "flow": {"type": "string", "minLength": 1, "description": "The flow to run (default: the plan's only flow)."},
        "input": {"type": "object", "description": "The flow's input, matching its `input:` fields."},
    },
    "required": ["plan"],
    "additionalProperties": False,
}
RUN_TOOL_DEF = types.Tool(
    name=RUN_TOOL,
    title="Run a Stratum plan",
    description=(
        "Run a flow of a Stratum plan you wrote (YAML text), with the same contracts, checks, budgets and trace as "
        "the served flows. Answers {run_id, flow, status, output} and a link to the trace; a failure names the "
        "error, the step and the violated condition. Steps handed to you come back as a PAUSED result: do them and "
        "report each with stratum_step_done. Plans sent this way cannot call Python code (`call:`)."
    ),
    input_schema=RUN_INPUT,
    annotations=types.ToolAnnotations(
        title="Run a Stratum plan",
        read_only_hint=False,
        destructive_hint=False,
        idempotent_hint=False,
        open_world_hint=True,
    ),
)


def agent_plan_source(text: str) -> str:
    """The source name of an agent's plan in problems and traces: `<agent plan 1a2b3c4d>`."""
    return f"<agent plan {hashlib.sha256(text.encode('utf-8', errors='replace')).hexdigest()[:8]}>"


def load_agent_plan(text: str, *, allowed_models: Collection[str] | None = None) -> Plan:
    """Load an agent's plan as untrusted text; raises PlanError with every problem, located.

    `allowed_models`: the only models its infer functions may name (the server's configured ones; None: any).
    """
    source = agent_plan_source(text)
    try:
        return load_plan_text(text, source=source, untrusted=True, allowed_models=allowed_models)
    except PlanError:
        raise
    except StratumError as e:  # anything else the loader refuses is still a problem of the text
        raise PlanError([Problem(source, 1, 1, "", str(e))]) from e


def _problem(problem: Problem) -> dict[str, Any]:
    found = {"line": problem.line, "column": problem.column, "path": problem.path, "message": problem.message}
    return {**found, "hint": problem.hint} if problem.hint else found


def validation_report(text: str, *, allowed_models: Collection[str] | None = None) -> dict[str, Any]:
    """`{valid, problems, flows}` for an agent's plan (`allowed_models` as for `load_agent_plan`)."""
    try:
        plan = load_agent_plan(text, allowed_models=allowed_models)
    except PlanError as e:
        report: dict[str, Any] = {"valid": False, "problems": [_problem(p) for p in e.problems], "flows": []}
        return {**report, "more": e.more} if e.more else report
    return {"valid": True, "problems": [], "flows": sorted(plan.flows)}


def problems_text(error: PlanError) -> str:
    """The problems of a refused plan, one `line:column: path: message (hint)` per line."""
    count = len(error.problems) + error.more
    lines = [f"The plan is not valid ({count} problem{'s' if count != 1 else ''}):"]
    for problem in error.problems:
        where = f"{problem.line}:{problem.column}: " + (f"{problem.path}: " if problem.path else "")
        lines.append(where + problem.message + (f" ({problem.hint})" if problem.hint else ""))
    if error.more:
        lines.append(f"... and {error.more} more problems")
    return "\n".join(lines)


def choose_flow(
    plan: Plan,
    arguments: Mapping[str, Any],
    input_errors: Callable[[Plan, str, Mapping[str, Any]], list[str]],
) -> tuple[str, dict[str, Any]] | str:
    """(flow, inputs) that `stratum_run`'s arguments ask for, or the text saying why they cannot run."""
    flows = sorted(plan.flows)
    flow = arguments.get("flow")
    if flow is None:
        if len(flows) != 1:
            return f"The plan has {len(flows)} flows: name one with `flow` ({', '.join(flows)})."
        flow = flows[0]
    flow = str(flow)
    if flow not in plan.flows:
        return f"The plan has no flow '{flow}' (flows: {', '.join(flows) or 'none'})."
    inputs = dict(arguments.get("input") or {})
    problems = input_errors(plan, flow, inputs)
    if problems:
        return f"Invalid input for flow '{flow}':\n" + "\n".join(problems)
    return flow, inputs
