"""The plans folder as a catalog of MCP tools: one tool per flow, with schemas, annotations and argument checks.

A catalog is an immutable snapshot; `PlanFolder.scan()` builds a new one when a file changed (stat first, then a
content hash, so touching a file reloads nothing). Tool names come from flow names, made to fit MCP clients
(`^[a-zA-Z0-9_-]{1,64}$`). Two flows that end up with the same tool name, in one plan or across plans, are both
skipped and the problem names both files: serving either would let a client call a flow it did not mean to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mcp.types as types
from jsonschema import Draft202012Validator, ValidationError

from stratum_core._capped import first_errors, more_line
from stratum_core.errors import PlanError
from stratum_core.plan import (
    AdaptiveFunction,
    CallStep,
    ComputeFunction,
    DebateStep,
    Flow,
    ForEachStep,
    HumanFunction,
    InferFunction,
    ParallelStep,
    Plan,
    RaceStep,
)
from stratum_core.plan._patterns import SchemaValidator
from stratum_core.plan._schema import contract_schema, fields_schema, type_schema

__all__ = [
    "DESCRIPTION_LIMIT",
    "PLAN_SUFFIXES",
    "REFERENCE_TOOL_NAMES",
    "RESERVED_TOOL_NAMES",
    "Catalog",
    "FlowTool",
    "PlanEntry",
    "PlanFolder",
    "argument_errors",
    "asks_people",
    "flow_title",
    "tool_name_for",
]

logger = logging.getLogger("stratum.server")

PLAN_SUFFIXES = (".stratum.yaml", ".stratum.yml")
DESCRIPTION_LIMIT = 2048
RESERVED_TOOL_NAMES = frozenset(
    {
        "stratum_resume",
        "stratum_card_answer",
        "stratum_step_done",
        "stratum_validate",
        "stratum_run",
        "stratum_status",
        "stratum_await",
        "stratum_cancel",
        "stratum_batch",
    }
)
"""The server's own tools: no flow is served under these names."""
REFERENCE_TOOL_NAMES = frozenset(
    {
        "stratum_plan",
        "stratum_gate_resolve",
        "stratum_audit",
        "stratum_skip_step",
        "stratum_parallel_done",
        "stratum_iteration_start",
        "stratum_iteration_report",
        "stratum_iteration_abort",
        "stratum_check_timeouts",
        "stratum_list_workflows",
    }
)
"""The reference's controller tools (served with `--reference-tools`, server/_reference_tools): reserved too."""
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")
_MESSAGE_LIMIT = 300
ARGUMENT_ERRORS_SHOWN = 20

PlanLoader = Callable[[Path, str], Plan]
"""Turns a plan file (its path and text) into a Plan, raising PlanError when it is not a valid plan."""


def tool_name_for(flow_name: str) -> str:
    """The MCP tool name of a flow: invalid characters become `_`, at most 64 characters."""
    if _TOOL_NAME.match(flow_name):
        return flow_name
    name = _INVALID_CHARS.sub("_", flow_name).strip("_")[:64]
    return name or "flow"


def plan_name_for(path: Path) -> str:
    """A plan's name in resource URIs: its file name without the `.stratum.yaml` suffix."""
    for suffix in PLAN_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _error_line(error: ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required" and isinstance(error.validator_value, list):
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        missing = [name for name in error.validator_value if name not in instance]
        field_name = ".".join(p for p in (path, str(missing[0]) if missing else "") if p)
        return f"{field_name or '(arguments)'}: required field is missing"
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set(error.schema.get("properties", {})) if isinstance(error.schema, Mapping) else set()
        extra = sorted(str(key) for key in error.instance if key not in allowed)
        expected = ", ".join(sorted(allowed)) or "none"
        return "; ".join(
            f"{'.'.join(p for p in (path, key) if p)}: unknown field (expected: {expected})" for key in extra
        )
    message = error.message
    return f"{path or '(arguments)'}: {_cut(message, _MESSAGE_LIMIT)}"


def argument_errors(validator: Draft202012Validator, arguments: Any) -> list[str]:
    """One line per offending field of `arguments`, sorted by field path (empty when the arguments are valid).

    At most ARGUMENT_ERRORS_SHOWN lines, then `... and K more`: a huge bad value is not answered line by line.
    """
    first, more = first_errors(validator.iter_errors(arguments), shown=ARGUMENT_ERRORS_SHOWN)
    lines: set[str] = set()
    for error in first:
        lines.update(_error_line(error).split("; "))
    shown = sorted(lines)
    if len(shown) > ARGUMENT_ERRORS_SHOWN:  # one error may name many unknown fields
        more += len(shown) - ARGUMENT_ERRORS_SHOWN
        shown = shown[:ARGUMENT_ERRORS_SHOWN]
    return [*shown, more_line(more)] if more else shown


@dataclass(frozen=True)
class FlowTool:
    """One flow served as an MCP tool.

    `wraps_output` is true when the flow's output is not a JSON object: MCP structured content (and so the output
    schema) must be an object, so the value travels as `{"result": value}`.
    """

    name: str
    plan_name: str
    path: Path
    plan: Plan
    flow: Flow
    tool: types.Tool
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    wraps_output: bool
    validator: Draft202012Validator = field(repr=False, compare=False)
    output_validator: Draft202012Validator | None = field(default=None, repr=False, compare=False)

    def argument_errors(self, arguments: Any) -> list[str]:
        """One line per offending field of the call's arguments."""
        return argument_errors(self.validator, arguments)

    def structured(self, output: Any) -> dict[str, Any]:
        """The structured content for a flow output."""
        if not self.wraps_output and isinstance(output, dict):
            return output
        return {"result": output}


@dataclass(frozen=True)
class PlanEntry:
    """One plan file as last read: its text, and the loaded plan or the reason it did not load."""

    name: str
    path: Path
    text: str
    digest: str
    stat: tuple[int, int]
    plan: Plan | None
    error: str | None


@dataclass(frozen=True)
class Catalog:
    """A snapshot of the plans folder: plans by name, tools by name, and the problems found."""

    plans: Mapping[str, PlanEntry] = field(default_factory=dict)
    tools: Mapping[str, FlowTool] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    def tool_signature(self) -> str:
        """A digest of every advertised tool, to tell whether the tool list changed."""
        dumped = [self.tools[name].tool.model_dump(mode="json", by_alias=True) for name in sorted(self.tools)]
        return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()

    def plan_signature(self) -> str:
        """A digest of the plan files' contents, to tell whether the plan resources changed."""
        return hashlib.sha256("\n".join(f"{n}:{e.digest}" for n, e in sorted(self.plans.items())).encode()).hexdigest()

    def contract_schema(self, plan_name: str, contract: str) -> dict[str, Any] | None:
        """The JSON Schema of a contract of a loaded plan, or None."""
        entry = self.plans.get(plan_name)
        if entry is None or entry.plan is None or contract not in entry.plan.contracts:
            return None
        return contract_schema(contract, entry.plan.contracts)


def _iter_call_steps(flow: Flow) -> Iterator[CallStep]:
    for step in flow.steps:
        if isinstance(step, CallStep):
            yield step
        elif isinstance(step, ParallelStep):
            yield from step.parallel.steps
        elif isinstance(step, RaceStep):
            yield from step.race
        elif isinstance(step, ForEachStep):
            yield step.step


def _reachable_functions(plan: Plan, flow: Flow) -> set[str]:
    """Names of every function a run of `flow` may call, through sub-flows and adaptive functions too."""
    seen_flows: set[str] = set()
    functions: set[str] = set()
    pending = [flow]
    while pending:
        current = pending.pop()
        if current.name in seen_flows:
            continue
        seen_flows.add(current.name)
        for step in _iter_call_steps(current):
            if step.function:
                functions.add(step.function)
            if step.flow and step.flow in plan.flows:
                pending.append(plan.flows[step.flow])
        for any_step in current.steps:
            if isinstance(any_step, DebateStep):
                functions.update(any_step.debate.agents)
                if any_step.debate.synthesize:
                    functions.add(any_step.debate.synthesize)
    queue = list(functions)
    while queue:
        fn = plan.functions.get(queue.pop())
        if isinstance(fn, AdaptiveFunction):
            for name in (fn.compute, fn.infer):
                if name not in functions:
                    functions.add(name)
                    queue.append(name)
    return functions


def _annotations(plan: Plan, flow: Flow, title: str | None) -> types.ToolAnnotations:
    """Hints that hold for every run: never read-only or idempotent (a run is recorded, models vary)."""
    functions = [plan.functions[name] for name in _reachable_functions(plan, flow) if name in plan.functions]
    calls_model = any(isinstance(fn, InferFunction) for fn in functions)
    runs_code = any(isinstance(fn, ComputeFunction) and fn.call for fn in functions)
    return types.ToolAnnotations(
        title=title,
        read_only_hint=False,
        destructive_hint=None if runs_code else False,
        idempotent_hint=False,
        open_world_hint=calls_model or runs_code,
    )


def asks_people(plan: Plan, flow: Flow) -> bool:
    """Whether a run of `flow` may ask a person (a human function is reachable from it)."""
    return any(isinstance(plan.functions.get(name), HumanFunction) for name in _reachable_functions(plan, flow))


def flow_title(flow: Flow) -> str:
    """A flow's title for people: its `title:`, else its name in words ('review_code' -> 'Review code')."""
    if flow.title:
        return flow.title
    words = re.sub(r"[_\-.\s]+", " ", flow.name).strip() or flow.name
    return words[:1].upper() + words[1:]


def _description(plan: Plan, flow: Flow, path: Path, text: str | None = None) -> str:
    text = text or flow.description or flow.title or plan.description or f"Run the flow '{flow.name}'."
    text = text.strip()
    extra = f"\n\n(Stratum flow '{flow.name}' of {path.name}; each call is recorded as a run: stratum://runs/{{run_id}}"
    if asks_people(plan, flow):
        extra += "; it may ask a person to decide, and pause until they answer"
    return _cut(text + extra + ".)", DESCRIPTION_LIMIT)


def _output_schema(plan: Plan, flow: Flow) -> tuple[dict[str, Any] | None, bool]:
    if flow.output is None:
        return None, True
    schema = type_schema(flow.output, plan.contracts)
    if schema.get("type") == "object" and "$ref" not in schema:
        return schema, False
    dialect = schema.pop("$schema", None)
    defs = schema.pop("$defs", None)
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {"result": schema},
        "required": ["result"],
        "additionalProperties": False,
    }
    if dialect:
        wrapped = {"$schema": dialect, **wrapped}
    if defs:
        wrapped["$defs"] = defs
    return wrapped, True


def build_tool(name: str, plan_name: str, path: Path, plan: Plan, flow: Flow) -> FlowTool:
    """The tool serving `flow` of `plan` under `name` (a reference plan's `workflow` name: as its block says)."""
    workflow = plan.workflow if plan.workflow is not None and name == tool_name_for(plan.workflow.name) else None
    input_schema = fields_schema(workflow.input if workflow is not None else flow.input, plan.contracts)
    output_schema, wraps = _output_schema(plan, flow)
    title = flow_title(flow)
    tool = types.Tool(
        name=name,
        title=title,
        description=_description(plan, flow, path, workflow.description if workflow is not None else None),
        input_schema=input_schema,
        output_schema=output_schema,
        annotations=_annotations(plan, flow, title),
    )
    validator = SchemaValidator(input_schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return FlowTool(
        name=name,
        plan_name=plan_name,
        path=path,
        plan=plan,
        flow=flow,
        tool=tool,
        input_schema=input_schema,
        output_schema=output_schema,
        wraps_output=wraps,
        validator=validator,
        output_validator=SchemaValidator(output_schema) if output_schema is not None else None,
    )


def _default_loader(path: Path, text: str) -> Plan:
    from stratum_core.plan import load_plan_text

    return load_plan_text(text, source=str(path), base_dir=path.parent)


def build_catalog(entries: Mapping[str, PlanEntry]) -> Catalog:
    """Tools for every flow of every loaded plan.

    Flows of different plans that share a name are each served under a name qualified by their plan
    (`<plan>_<flow>`, e.g. `support_triage_triage`); a name still claimed twice serves none of its claimants.
    """
    problems: list[str] = [f"{entry.path}: not served: {entry.error}" for entry in entries.values() if entry.error]
    first: dict[str, list[tuple[PlanEntry, Flow]]] = {}
    for entry in sorted(entries.values(), key=lambda e: str(e.path)):
        if entry.plan is None:
            continue
        for flow in entry.plan.flows.values():
            first.setdefault(tool_name_for(flow.name), []).append((entry, flow))
        workflow = entry.plan.workflow  # a reference plan's `workflow` block: its flow is also served under its name
        if workflow is not None and workflow.flow in entry.plan.flows:
            if tool_name_for(workflow.name) != tool_name_for(workflow.flow):
                first.setdefault(tool_name_for(workflow.name), []).append((entry, entry.plan.flows[workflow.flow]))
    claims: dict[str, list[tuple[PlanEntry, Flow]]] = {}
    for name, owners in first.items():
        if len(owners) == 1:
            claims.setdefault(name, []).extend(owners)
            continue
        qualified = [tool_name_for(f"{entry.name}_{flow.name}") for entry, flow in owners]
        pairs = zip(owners, qualified, strict=True)
        where = ", ".join(f"{entry.path} (flow '{flow.name}') as '{q}'" for (entry, flow), q in pairs)
        problems.append(f"tool name '{name}' is claimed by several plans: served as {where}")  # a warning
        for owner, qualified_name in zip(owners, qualified, strict=True):
            claims.setdefault(qualified_name, []).append(owner)
    tools: dict[str, FlowTool] = {}
    for name, owners in sorted(claims.items()):
        if name in RESERVED_TOOL_NAMES or name in REFERENCE_TOOL_NAMES:
            for entry, flow in owners:
                problems.append(f"{entry.path}: flow '{flow.name}' not served: the tool name '{name}' is reserved")
            continue
        if len(owners) > 1:
            where = " and ".join(f"{entry.path} (flow '{flow.name}')" for entry, flow in owners)
            problems.append(f"tool name '{name}' is claimed by {where}: none of them is served; rename the flows")
            continue
        entry, flow = owners[0]
        assert entry.plan is not None
        try:
            tools[name] = build_tool(name, entry.name, entry.path, entry.plan, flow)
        except Exception as e:  # a plan the checker let through but whose schema cannot be built
            logger.exception("flow %r of %s cannot be served", flow.name, entry.path)
            problems.append(f"{entry.path}: flow '{flow.name}' not served: {e}")
    return Catalog(plans=dict(entries), tools=tools, problems=tuple(problems))


class PlanFolder:
    """The plans folder, re-read on demand: unchanged files (same size and mtime, or same content) are not reloaded.

    `loader` turns a file's text into a Plan and raises PlanError when it is not a valid plan.
    """

    def __init__(self, path: Path, *, loader: PlanLoader | None = None) -> None:
        self.path = path
        self._loader = loader or _default_loader
        self._entries: dict[Path, PlanEntry] = {}
        self.catalog = Catalog()

    def _files(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.iterdir() if p.is_file() and p.name.endswith(PLAN_SUFFIXES))

    def _read(self, path: Path, stat: tuple[int, int]) -> PlanEntry:
        previous = self._entries.get(path)
        if previous is not None and previous.stat == stat:
            return previous
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if previous is not None and previous.digest == digest:
            return PlanEntry(previous.name, path, previous.text, digest, stat, previous.plan, previous.error)
        text = data.decode("utf-8", errors="replace")  # the loader reports what is not valid
        plan: Plan | None = None
        error: str | None = None
        try:
            plan = self._loader(path, text)
        except PlanError as e:
            error = str(e)
        except Exception as e:
            logger.exception("plan %s failed to load", path)
            error = f"{type(e).__name__}: {e}"
        return PlanEntry(plan_name_for(path), path, text, digest, stat, plan, error)

    def scan(self) -> bool:
        """Re-read the folder; returns True when the catalog changed (a new snapshot is in `self.catalog`).

        Blocking file IO: call it from a worker thread in async code.
        """
        entries: dict[Path, PlanEntry] = {}
        for path in self._files():
            try:
                info = path.stat()
                entries[path] = self._read(path, (info.st_mtime_ns, info.st_size))
            except OSError as e:  # removed or unreadable between listing and reading
                logger.warning("plan %s cannot be read: %s", path, e)
        changed = set(entries) != set(self._entries) or any(
            self._entries[p].digest != e.digest for p, e in entries.items()
        )
        if not changed and self.catalog.plans:
            self._entries = entries
            return False
        self._entries = entries
        by_name: dict[str, PlanEntry] = {}
        for entry in entries.values():
            if entry.error:
                logger.error("plan %s is skipped:\n%s", entry.path, entry.error)
            if entry.name in by_name:
                logger.error("plan %s is skipped: its name collides with %s", entry.path, by_name[entry.name].path)
                continue
            by_name[entry.name] = entry
        catalog = build_catalog(by_name)
        for problem in catalog.problems:
            if "not served: " in problem and any(problem.startswith(f"{e.path}: not served") for e in entries.values()):
                continue  # already logged with its full text above
            served_anyway = "is claimed by several plans: served as" in problem
            logger.log(logging.WARNING if served_anyway else logging.ERROR, "%s", problem)
        old, self.catalog = self.catalog, catalog
        return changed or old.tool_signature() != catalog.tool_signature()
