"""Reference plans (IR versions "0.1", "0.2", "0.3"): their own rules, and their translation into our plan.

A reference plan is first checked by its version's schema (`_reference_schema`), then by the reference's semantic
rules (gates, routing targets, step shapes; said here, located in the text), and then translated into the data of
one of our plans, which the ordinary builder and checker take from there. The translation keeps the meaning:

- `retries` counts attempts in 0.x (ours counts retries after the first), so `retries: 3` becomes 2;
- a `mode: gate` function becomes a human function whose decision is `{outcome: approve|revise|kill, rationale}`;
  the step's routing (`on_approve`, `on_revise`, `on_kill`, `on_fail`, `next`, iterations) goes to `CallStep.route`
  and the flow runs sequentially (`Flow.sequential`), as the reference runs it;
- inline steps (`intent` without a function), `decompose` and `parallel_dispatch` get a function made for the step;
- a step's `output_schema` and a function's `guardrails` become checks of that function's output;
- `skip_if` keeps its `$.` references (`$.steps.x.output` reads as `steps.x.output`) and `true/false/null`.

Where the reference has a bug we do the right thing (see docs/plan-language.md, "Reference plans").
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from stratum_core.errors import Problem
from stratum_core.plan._yaml import Path, SourceMap, format_path

__all__ = [
    "FILE_FUNCTIONS",
    "GATE_CONTRACT",
    "ReferenceTranslation",
    "reference_expression",
    "reference_problems",
    "step_order",
    "translate_reference",
]

GATE_CONTRACT = "GateDecision"
"""The decision contract of a gate (a name that a plan's own contract of that name replaces by a suffixed one)."""
FILE_FUNCTIONS = frozenset({"file_exists", "file_contains", "no_file_conflicts"})
_TYPE_ALIASES = {
    "str": "string",
    "text": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
}
_PARALLEL_ONLY = ("source", "max_concurrent", "isolation", "require", "merge", "intent_template")
_GATE_ONLY = ("on_approve", "on_revise", "on_kill", "policy", "policy_fallback")
_STEP_LEVEL = ("ensure", "retries", "output_contract", "model", "budget", "guardrails")
_REF = re.compile(r"\$\.(steps|input)\b")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERALS = {"true": "True", "false": "False", "null": "None"}


def _problem(source: str, source_map: SourceMap, path: Path, message: str, hint: str | None = None) -> Problem:
    line, column = source_map.value(path)
    return Problem(source, line, column, format_path(path), message, hint)


def _deps(step: Mapping[str, Any]) -> set[str]:
    """The step ids a reference step waits for: `depends_on` and the `$.steps.X` references of its inputs/source."""
    found = {d for d in step.get("depends_on") or () if isinstance(d, str)}
    texts = [v for v in (step.get("inputs") or {}).values() if isinstance(v, str)]
    if isinstance(step.get("source"), str):
        texts.append(step["source"])
    for text in texts:
        match = re.match(r"\$\.steps\.([A-Za-z0-9_\-]+)", text)
        if match:
            found.add(match.group(1))
    return found


def step_order(steps: list[Mapping[str, Any]]) -> list[int]:
    """Kahn's order of a reference flow's steps (dependencies first, YAML order breaks ties), as indexes.

    Steps in a cycle (the checker reports it) are appended in YAML order, so the order is always complete.
    """
    ids = {str(step.get("id")): index for index, step in enumerate(steps)}
    waits = {index: {ids[d] for d in _deps(step) if d in ids and ids[d] != index} for index, step in enumerate(steps)}
    order: list[int] = []
    done: set[int] = set()
    while len(order) < len(steps):
        ready = [i for i in range(len(steps)) if i not in done and waits[i] <= done]
        if not ready:
            ready = [next(i for i in range(len(steps)) if i not in done)]
        order.append(ready[0])
        done.add(ready[0])
    return order


def reference_expression(text: str) -> str:
    """A reference expression in our syntax: `$.steps.x` -> `steps.x`, `$.input.y` -> `input.y`, true/false/null.

    Only text outside string literals is rewritten.
    """
    out: list[str] = []
    quote: str | None = None
    index = 0
    while index < len(text):
        char = text[index]
        if quote is not None:
            if char == "\\":
                out.append(text[index : index + 2])
                index += 2
                continue
            if char == quote:
                quote = None
            out.append(char)
            index += 1
            continue
        if char in "'\"":
            quote = char
            out.append(char)
            index += 1
            continue
        if text.startswith("$.", index) and _REF.match(text, index):
            index += 2
            continue
        word = _WORD.match(text, index)
        if word is not None:
            name = word.group(0)
            previous = out[-1][-1:] if out else ""
            out.append(_LITERALS.get(name, name) if previous != "." else name)
            index = word.end()
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _uses_files(text: str) -> bool:
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FILE_FUNCTIONS
        for node in ast.walk(tree)
    )


# -- semantic rules ----------------------------------------------------------------------------------------------


@dataclass
class _Rules:
    data: Mapping[str, Any]
    version: str
    source: str
    source_map: SourceMap
    problems: list[Problem] = field(default_factory=list)

    def report(self, path: Path, message: str, hint: str | None = None) -> None:
        self.problems.append(_problem(self.source, self.source_map, path, message, hint))

    @property
    def functions(self) -> Mapping[str, Any]:
        raw = self.data.get("functions")
        return raw if isinstance(raw, Mapping) else {}

    @property
    def contracts(self) -> Mapping[str, Any]:
        raw = self.data.get("contracts")
        return raw if isinstance(raw, Mapping) else {}

    @property
    def flows(self) -> Mapping[str, Any]:
        raw = self.data.get("flows")
        return raw if isinstance(raw, Mapping) else {}

    def check(self) -> list[Problem]:
        for name, fn in self.functions.items():
            if isinstance(fn, Mapping):
                self.function(name, fn)
        for name, flow in self.flows.items():
            if isinstance(flow, Mapping) and isinstance(flow.get("steps"), list):
                self.flow(name, flow)
        self.workflow()
        return self.problems

    def function(self, name: str, fn: Mapping[str, Any]) -> None:
        path: Path = ("functions", name)
        if fn.get("mode") == "gate":
            for key in ("ensure", "budget", "guardrails", "retries"):
                if key in fn:
                    self.report((*path, key), f"a gate function cannot have '{key}'", "a person decides a gate")
            return
        output = fn.get("output")
        if output is None or (isinstance(output, str) and output not in self.contracts):
            self.report(
                (*path, "output") if "output" in fn else path,
                f"output contract '{output or ''}' not defined",
                "declare it under contracts",
            )
        for index, pattern in enumerate(fn.get("guardrails") or ()):
            self.guardrail((*path, "guardrails", index), pattern)
        for index, text in enumerate(fn.get("ensure") or ()):
            if isinstance(text, str) and "__" in text:
                self.report((*path, "ensure", index), "an expression cannot contain '__'")

    def guardrail(self, path: Path, pattern: Any) -> None:
        from stratum_core.engine._guardrails import pattern_problem

        if isinstance(pattern, str):
            problem = pattern_problem(pattern)
            if problem is not None:
                self.report(path, f"guardrail {pattern!r} is not a valid regular expression: {problem}")

    def flow(self, name: str, flow: Mapping[str, Any]) -> None:
        steps: list[Any] = flow["steps"]
        ids = [str(step.get("id")) for step in steps if isinstance(step, Mapping)]
        order = step_order([s if isinstance(s, Mapping) else {} for s in steps])
        position = {str(steps[i].get("id")) if isinstance(steps[i], Mapping) else "": n for n, i in enumerate(order)}
        for index, step in enumerate(steps):
            if isinstance(step, Mapping):
                self.step(name, (*("flows", name, "steps"), index), step, ids, position)

    def step(self, flow: str, path: Path, step: Mapping[str, Any], ids: list[str], position: dict[str, int]) -> None:
        kind = step.get("type")
        step_id = str(step.get("id"))
        for index, target in enumerate(step.get("depends_on") or ()):
            if target not in ids:
                self.report((*path, "depends_on", index), f"depends_on names an unknown step '{target}'")
        if kind in ("decompose", "parallel_dispatch"):
            self.parallel(path, step, kind)
            return
        callers = [key for key in ("function", "intent", "flow") if key in step]
        if len(callers) != 1:
            self.report(
                path,
                f"step '{step_id}' needs exactly one of 'function', 'intent' and 'flow'"
                + (f" (it has {', '.join(callers)})" if callers else ""),
            )
        for key in _PARALLEL_ONLY:
            if key in step:
                self.report((*path, key), f"'{key}' is only for steps of type decompose or parallel_dispatch")
        is_gate = False
        if "function" in step:
            fn = self.functions.get(step["function"])
            if not isinstance(fn, Mapping):
                self.report((*path, "function"), f"unknown function '{step['function']}'")
            else:
                is_gate = fn.get("mode") == "gate"
            for key in _STEP_LEVEL:
                if key in step:
                    self.report((*path, key), f"'{key}' must be on the function, not the step")
        if "flow" in step:
            if step["flow"] not in self.flows:
                self.report((*path, "flow"), f"unknown flow '{step['flow']}'")
            for key in ("agent", "retries", "model", "budget", "guardrails"):
                if key in step:
                    self.report((*path, key), f"a flow step cannot have '{key}'")
        for index, pattern in enumerate(step.get("guardrails") or ()):
            self.guardrail((*path, "guardrails", index), pattern)
        if is_gate:
            self.gate(path, step, ids, position)
        else:
            self.ordinary(path, step, ids)

    def gate(self, path: Path, step: Mapping[str, Any], ids: list[str], position: dict[str, int]) -> None:
        step_id = str(step.get("id"))
        for key in ("output_schema", "max_iterations", "on_fail", "next"):
            if key in step:
                self.report((*path, key), f"a gate step cannot have '{key}'")
        for key in ("on_approve", "on_kill"):
            if key not in step:
                self.report(path, f"gate step '{step_id}' must declare '{key}' (null ends or continues the flow)")
        revise = step.get("on_revise")
        if revise is None:
            self.report((*path, "on_revise") if "on_revise" in step else path, f"gate step '{step_id}' needs on_revise")
        elif revise == step_id:
            self.report((*path, "on_revise"), "on_revise cannot name the gate itself")
        elif revise in ids and position.get(revise, 0) >= position.get(step_id, 0):
            self.report(
                (*path, "on_revise"), f"on_revise must name an earlier step, and '{revise}' runs after the gate"
            )
        for key in ("on_approve", "on_revise", "on_kill"):
            target = step.get(key)
            if target is not None and target not in ids:
                self.report((*path, key), f"{key} names an unknown step '{target}'")
        if "policy_fallback" in step and "policy" not in step:
            self.report((*path, "policy_fallback"), "policy_fallback needs policy")

    def ordinary(self, path: Path, step: Mapping[str, Any], ids: list[str]) -> None:
        for key in _GATE_ONLY:
            if key in step:
                self.report((*path, key), f"'{key}' is only for gate steps")
        if "on_fail" in step:
            fn = self.functions.get(str(step.get("function"))) if "function" in step else None
            checks = any(step.get(key) for key in ("ensure", "guardrails", "output_schema")) or (
                isinstance(fn, Mapping) and any(fn.get(key) for key in ("ensure", "guardrails"))
            )
            if not checks:
                self.report(
                    (*path, "on_fail"),
                    "on_fail can never trigger",
                    "add ensure, guardrails or output_schema to the step or its function",
                )
        for key in ("on_fail", "next"):
            target = step.get(key)
            if isinstance(target, str) and target not in ids:
                self.report((*path, key), f"{key} names an unknown step '{target}'")
        if "exit_criterion" in step:
            if "max_iterations" not in step:
                self.report((*path, "exit_criterion"), "exit_criterion needs max_iterations")
            if "__" in str(step["exit_criterion"]):
                self.report((*path, "exit_criterion"), "an expression cannot contain '__'")

    def parallel(self, path: Path, step: Mapping[str, Any], kind: str) -> None:
        if kind == "decompose":
            for key in ("agent", "intent", "output_contract"):
                if key not in step:
                    self.report(path, f"a decompose step needs '{key}'")
            for key in ("intent_template", "source", "isolation", "require", "merge"):
                if key in step:
                    self.report((*path, key), f"a decompose step cannot have '{key}'")
        else:
            for key in ("source", "intent_template"):
                if key not in step:
                    self.report(path, f"a parallel_dispatch step needs '{key}'")

    def workflow(self) -> None:
        workflow = self.data.get("workflow")
        if not isinstance(workflow, Mapping) or not self.flows:
            return
        entry = entry_flow(self.data)
        flow = self.flows.get(entry)
        if not isinstance(flow, Mapping):
            return
        wanted = set(workflow.get("input") or {})
        declared = set(flow.get("input") or {}) if isinstance(flow.get("input"), Mapping) else set()
        if wanted != declared:
            self.report(
                ("workflow", "input"),
                f"the workflow's inputs ({', '.join(sorted(wanted)) or 'none'}) are not those of its flow "
                f"'{entry}' ({', '.join(sorted(declared)) or 'none'})",
            )


def entry_flow(data: Mapping[str, Any]) -> str:
    """The flow a `workflow` block serves: the flow of the same name, else the first flow."""
    flows = data.get("flows") if isinstance(data.get("flows"), Mapping) else {}
    workflow = data.get("workflow") if isinstance(data.get("workflow"), Mapping) else {}
    assert isinstance(flows, Mapping) and isinstance(workflow, Mapping)
    name = workflow.get("name")
    if name in flows:
        return str(name)
    return str(next(iter(flows), ""))


def reference_problems(data: Mapping[str, Any], version: str, source: str, source_map: SourceMap) -> list[Problem]:
    """The reference's semantic rules that `data` (schema-valid or not) breaks, located."""
    return _Rules(data, version, source, source_map).check()


# -- translation -------------------------------------------------------------------------------------------------


@dataclass
class ReferenceTranslation:
    """A reference plan as the data of one of our plans, with where its made-up entities point in the text."""

    data: dict[str, Any]
    positions: dict[Path, Path] = field(default_factory=dict)
    """For each path made up by the translation, the path in the text it stands for (to locate problems)."""


def _type(raw: Any) -> Any:
    if isinstance(raw, str):
        return {"type": _TYPE_ALIASES.get(raw, raw)}
    if not isinstance(raw, Mapping):
        return {"type": "any"}
    spec = {k: v for k, v in raw.items() if k in ("type", "values", "description", "default", "required")}
    if isinstance(spec.get("type"), str):
        spec["type"] = _TYPE_ALIASES.get(spec["type"], spec["type"])
    else:
        spec.setdefault("type", "any")
    if "required" in spec and not isinstance(spec["required"], bool):
        spec.pop("required")
    return spec


def _fields(raw: Any) -> dict[str, Any]:
    return {str(k): _type(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def _attempts_to_retries(value: Any, default_attempts: int) -> int:
    attempts = value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else default_attempts
    return min(attempts - 1, 20)


def _budget(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    out: dict[str, Any] = {}
    for key, target in (("ms", "ms"), ("usd", "usd"), ("max_tokens", "tokens")):
        if key in raw:
            out[target] = raw[key]
    return out or None


def _split_ensure(raw: Any) -> tuple[list[str], list[str]]:
    plain: list[str] = []
    files: list[str] = []
    for text in raw if isinstance(raw, list) else []:
        if not isinstance(text, str):
            continue
        rewritten = reference_expression(text)
        (files if _uses_files(rewritten) else plain).append(rewritten)
    return plain, files


class _Translator:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.raw = data
        self.out: dict[str, Any] = {"version": str(data.get("version"))}
        self.positions: dict[Path, Path] = {}
        self.gate_contract = GATE_CONTRACT
        contracts = data.get("contracts") if isinstance(data.get("contracts"), Mapping) else {}
        assert isinstance(contracts, Mapping)
        while self.gate_contract in contracts:
            self.gate_contract += "_"
        self.uses: dict[str, dict[str, Any]] = {}

    def translate(self) -> ReferenceTranslation:
        raw_contracts = self.raw.get("contracts")
        contracts = {
            str(name): _fields(fields)
            for name, fields in (raw_contracts.items() if isinstance(raw_contracts, Mapping) else [])
        }
        self.out["contracts"] = contracts
        self.out["functions"] = {}
        self.collect_uses()
        raw_functions = self.raw.get("functions")
        for name, fn in raw_functions.items() if isinstance(raw_functions, Mapping) else []:
            if isinstance(fn, Mapping):
                self.out["functions"][str(name)] = self.function(str(name), fn)
        if any(fn.get("mode") == "human" for fn in self.out["functions"].values()):
            contracts[self.gate_contract] = {
                "outcome": {"type": "string", "enum": ["approve", "revise", "kill"]},
                "rationale": {"type": "string", "required": False},
            }
        if isinstance(self.raw.get("workflow"), Mapping):
            self.out["workflow"] = dict(self.raw["workflow"])
        self.out["flows"] = {}
        raw_flows = self.raw.get("flows")
        for name, flow in raw_flows.items() if isinstance(raw_flows, Mapping) else []:
            if isinstance(flow, Mapping):
                self.out["flows"][str(name)] = self.flow(str(name), flow)
        return ReferenceTranslation(self.out, self.positions)

    def collect_uses(self) -> None:
        """The inputs every function is called with (a 0.2 function may leave `input` out)."""
        raw_flows = self.raw.get("flows")
        for flow in raw_flows.values() if isinstance(raw_flows, Mapping) else []:
            for step in flow.get("steps") or () if isinstance(flow, Mapping) else ():
                if isinstance(step, Mapping) and isinstance(step.get("function"), str):
                    used = self.uses.setdefault(step["function"], {})
                    for key in step.get("inputs") or {}:
                        used.setdefault(str(key), {"type": "any"})

    def function(self, name: str, fn: Mapping[str, Any]) -> dict[str, Any]:
        mode = fn.get("mode")
        declared = _fields(fn.get("input")) if "input" in fn else dict(self.uses.get(name, {}))
        if mode == "gate":
            out: dict[str, Any] = {
                "mode": "human",
                "question": fn.get("intent") or f"Gate '{name}': approve, revise or kill?",
                "input": declared,
                "output": self.gate_contract,
            }
            if isinstance(fn.get("timeout"), int):
                out["timeout"] = fn["timeout"]
                out["on_timeout"] = {"outcome": "kill", "rationale": "timeout"}
            return out
        plain, files = _split_ensure(fn.get("ensure"))
        out = {
            "mode": "compute" if mode == "compute" else "infer",
            "intent": fn.get("intent") or f"Do {name}.",
            "input": declared,
            "output": fn.get("output") if isinstance(fn.get("output"), str) else {"type": "object"},
            "ensure": plain,
            "retries": _attempts_to_retries(fn.get("retries"), 3),
        }
        if files:
            out["file_ensure"] = files
        if isinstance(fn.get("model"), str) and mode != "compute":
            out["model"] = fn["model"]
        budget = _budget(fn.get("budget"))
        if budget:
            out["budget"] = budget
        if fn.get("guardrails"):
            out["guardrails"] = list(fn["guardrails"])
        return out

    def flow(self, name: str, flow: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"input": _fields(flow.get("input")), "sequential": True, "steps": []}
        budget = _budget(flow.get("budget"))
        if budget:
            out["budget"] = budget
        if isinstance(flow.get("max_rounds"), int):
            out["max_rounds"] = flow["max_rounds"]
        steps = flow.get("steps") if isinstance(flow.get("steps"), list) else []
        assert isinstance(steps, list)
        for index, step in enumerate(steps):
            if isinstance(step, Mapping):
                out["steps"].append(self.step(name, index, step))
            else:
                out["steps"].append(step)
        return out

    def made_function(self, name: str, body: dict[str, Any], at: Path) -> str:
        self.out["functions"][name] = body
        self.positions[("functions", name)] = at
        return name

    def step(self, flow: str, index: int, step: Mapping[str, Any]) -> dict[str, Any]:
        at: Path = ("flows", flow, "steps", index)
        step_id = str(step.get("id"))
        out: dict[str, Any] = {"id": step.get("id")}
        if step.get("depends_on"):
            out["depends_on"] = list(step["depends_on"])
        inputs = dict(step.get("inputs") or {})
        route: dict[str, Any] = {}
        kind = step.get("type")
        made = f"{step_id}@{flow}"
        if kind == "parallel_dispatch":
            route["dispatch"] = {
                key: step[key]
                for key in ("source", "max_concurrent", "require", "merge", "isolation", "intent_template")
                if key in step
            }
            out["function"] = self.made_function(made, self.inline(step, default_attempts=2, task=True), at)
            inputs = {}
        elif kind == "decompose" or ("intent" in step and "function" not in step and "flow" not in step):
            out["function"] = self.made_function(made, self.inline(step, default_attempts=2 if kind else 1), at)
        elif "flow" in step:
            out["flow"] = step["flow"]
        elif "function" in step:
            name = str(step["function"])
            fn = self.out["functions"].get(name)
            if "output_schema" in step and isinstance(fn, dict) and fn.get("mode") != "human":
                variant = copy.deepcopy(fn)
                variant["output_schema"] = step["output_schema"]
                name = self.made_function(made, variant, at)
            out["function"] = name
            fn = self.out["functions"].get(name)
            if isinstance(fn, dict) and fn.get("mode") == "human":
                route["gate"] = True
        out["inputs"] = inputs
        if "skip_if" in step and isinstance(step["skip_if"], str):
            condition = reference_expression(step["skip_if"])
            if route.get("gate"):
                route["skip_if"] = condition  # a gate whose skip_if holds is approved, not skipped
            else:
                out["when"] = f"not ({condition})"
        for key in (
            "skip_reason",
            "on_fail",
            "next",
            "on_approve",
            "on_revise",
            "on_kill",
            "policy",
            "policy_fallback",
            "max_iterations",
        ):
            if key in step:
                route[key] = step[key]
        if isinstance(step.get("exit_criterion"), str):
            route["exit_criterion"] = reference_expression(step["exit_criterion"])
        if route:
            out["route"] = route
        return out

    def inline(self, step: Mapping[str, Any], *, default_attempts: int, task: bool = False) -> dict[str, Any]:
        plain, files = _split_ensure(step.get("ensure"))
        contract = step.get("output_contract")
        body: dict[str, Any] = {
            "mode": "infer",
            "intent": str(step.get("intent_template") if task else step.get("intent") or "Do this step."),
            "input": {str(key): {"type": "any"} for key in step.get("inputs") or {}},
            "output": contract if isinstance(contract, str) else {"type": "object"},
            "ensure": plain,
            "retries": _attempts_to_retries(step.get("retries"), default_attempts),
        }
        if task:
            body["input"] = {
                "task": {"type": "any", "required": False},
                "instruction": {"type": "string", "required": False},
            }
        if files:
            body["file_ensure"] = files
        if isinstance(step.get("model"), str):
            body["model"] = step["model"]
        budget = _budget(step.get("budget"))
        if budget:
            body["budget"] = budget
        if step.get("guardrails"):
            body["guardrails"] = list(step["guardrails"])
        if isinstance(step.get("output_schema"), Mapping):
            body["output_schema"] = step["output_schema"]
        return body


def translate_reference(data: Mapping[str, Any]) -> ReferenceTranslation:
    """The data of our plan that means what the reference plan `data` means (run it through the builder)."""
    return _Translator(data).translate()


def iter_made_functions(translation: ReferenceTranslation) -> Iterator[str]:
    """The names of the functions the translation made up (inline steps, step variants)."""
    for path in translation.positions:
        if path[:1] == ("functions",):
            yield str(path[1])
