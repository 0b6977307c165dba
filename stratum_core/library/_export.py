"""Export a library module as a plan: contracts, functions (compute by import path) and flows, as `.stratum.yaml`.

A flow exports when its body is a sequence of steps, which is how most flows read anyway:

    sentiment = await classify(ticket.text)          # a step; its id is the variable's name
    reply = await draft(ticket=ticket, sentiment=sentiment)
    reviews = await parallel(review(code), lint(code), require=1)
    decision = await await_human(question="Send it?", context={"reply": reply}, decision_type=Approval)
    return reply

Arguments are flow inputs, earlier results (or fields of them: `ticket.text`, `items[0]`) and literals. Anything
else (`if`, loops, arithmetic on results, calls of undecorated functions, Python callables in ensure) has no plan
form: export names it, with its file and line, and writes nothing. The plan written is loaded and checked before
export returns, so an exported plan always passes `stratum validate`.
"""

from __future__ import annotations

import ast
import builtins
import datetime
import importlib
import inspect
import os
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from stratum_core.errors import PlanError, Problem
from stratum_core.library._check import Location, display_path, location_of
from stratum_core.library._conditions import is_python_token, suggestion
from stratum_core.library._emit import plan_text
from stratum_core.library._flow import FlowFn
from stratum_core.library._functions import ComputeFn, StratumFunction
from stratum_core.library._primitives import await_human, debate, human_function, parallel, race
from stratum_core.library._types import ContractInfo, DefinitionProblem, is_contract_class, merge_contracts
from stratum_core.library._types import contract_info as _contract_info
from stratum_core.plan import (
    CallStep,
    ComputeFunction,
    Contract,
    Debate,
    DebateStep,
    Flow,
    Function,
    InferFunction,
    ParallelGroup,
    ParallelStep,
    RaceStep,
    Step,
    TypeSpec,
    load_plan_text,
)

__all__ = ["export_plan"]

_STATEMENTS = {
    ast.If: "an `if` statement",
    ast.For: "a `for` loop",
    ast.AsyncFor: "an `async for` loop",
    ast.While: "a `while` loop",
    ast.Try: "a `try` statement",
    ast.With: "a `with` statement",
    ast.AsyncWith: "an `async with` statement",
    ast.Raise: "a `raise` statement",
    ast.Assert: "an `assert` statement",
    ast.AugAssign: "an augmented assignment",
    ast.Delete: "a `del` statement",
    ast.Import: "an import",
    ast.ImportFrom: "an import",
    ast.Global: "a `global` statement",
    ast.Nonlocal: "a `nonlocal` statement",
    ast.FunctionDef: "a nested function",
    ast.AsyncFunctionDef: "a nested function",
    ast.ClassDef: "a nested class",
    ast.Match: "a `match` statement",
}
_SHAPE_HINT = "a flow that exports is a sequence of `name = await step(...)` lines and a `return`"
_INPUT_HINT = (
    "a step input is a flow input, an earlier result (or a field of one), a literal, or a contract built from these"
)


class _Refused(Exception):
    def __init__(self, node: ast.AST | None, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.message = message
        self.hint = hint


@dataclass
class _Collector:
    """Everything the plan will hold, the problems found, and where each part is in the Python source."""

    contracts: dict[str, Contract] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
    owners: dict[str, object] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    locations: dict[str, Location] = field(default_factory=dict)
    pending_flows: list[FlowFn[Any, Any]] = field(default_factory=list)

    def problem(self, where: Location, path: str, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(where.file, where.line, where.column, path, message, hint))

    def add_contracts(self, contracts: Mapping[str, Contract], where: Location, path: str) -> None:
        try:
            merge_contracts(self.contracts, contracts)
        except DefinitionProblem as problem:
            self.problem(where, path, problem.message, problem.hint)

    def add_contract_class(self, cls: type) -> None:
        where = location_of(cls)
        try:
            info: ContractInfo = _contract_info(cls)
        except DefinitionProblem as problem:
            self.problem(where, f"contracts.{cls.__name__}", problem.message, problem.hint)
            return
        self.locations.setdefault(f"contracts.{info.name}", where)
        self.add_contracts(info.contracts, where, f"contracts.{info.name}")

    def add_function(self, function: StratumFunction[Any, Any]) -> None:
        name = function.name
        path = f"functions.{name}"
        owner = self.owners.get(path)
        if owner is function:
            return
        if owner is not None:
            self.problem(
                function.location,
                path,
                f"two different functions are named '{name}'",
                "rename one, or pass name=... to its decorator",
            )
            return
        self.owners[path] = function
        self.locations[path] = function.location
        self.add_contracts(function.contracts, function.location, path)
        definition = function.definition
        for index, text in enumerate(definition.given):
            self._condition(function, f"{path}.given[{index}]", text)
        for index, text in enumerate(definition.ensure):
            self._condition(function, f"{path}.ensure[{index}]", text)
        if isinstance(definition, InferFunction) and definition.refine is not None:
            self._condition(function, f"{path}.refine.until", definition.refine.until)
            if definition.refine.feedback is not None:
                self._condition(function, f"{path}.refine.feedback", definition.refine.feedback)
        if isinstance(function, ComputeFn) and isinstance(definition, ComputeFunction):
            problem = _import_problem(function)
            if problem is not None:
                self.problem(function.location, f"{path}.call", *problem)
            definition = definition.model_copy(update={"call": function.import_path})
        self.functions[name] = definition

    def _condition(self, function: StratumFunction[Any, Any], path: str, text: str) -> None:
        if is_python_token(text):
            better = suggestion(text)
            hint = f"write it as the expression {better!r}" if better else "write it as an expression string"
            self.problem(
                function.location, path, f"a Python callable ({_condition_text(text)}) cannot be exported", hint
            )

    def add_human(self, function: Function, contracts: Mapping[str, Contract], where: Location) -> None:
        path = f"functions.{function.name}"
        if path in self.owners:
            self.problem(
                where,
                path,
                f"two different functions are named '{function.name}'",
                "the human step takes its name from the variable its decision is bound to; rename it",
            )
            return
        self.owners[path] = function
        self.locations[path] = where
        self.add_contracts(contracts, where, path)
        self.functions[function.name] = function


def _condition_text(token: str) -> str:
    return token.split(": ", 1)[1] if ": " in token else token


def _import_problem(function: ComputeFn[Any, Any]) -> tuple[str, str] | None:
    """Why a plan could not import a compute function by its path, or None."""
    module_name, _, qualname = function.import_path.partition(":")
    hint = "define it at the top level of a module the plan can import"
    if module_name == "__main__" or "<locals>" in qualname:
        where = "in __main__" if module_name == "__main__" else "inside another function"
        return f"compute function '{function.name}' is defined {where}: a plan cannot import it", hint
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return f"'{function.import_path}' does not import", hint
    if target is not function:
        return f"'{function.import_path}' is not this compute function", hint
    return None


# -- flows -------------------------------------------------------------------------------------------------------


class _FlowReader:
    """Reads one flow's body into plan steps."""

    def __init__(self, flow: FlowFn[Any, Any], collector: _Collector) -> None:
        if flow.sites is None:
            raise _Refused(None, f"the source of flow '{flow.name}' cannot be read")
        self.flow = flow
        self.sites = flow.sites
        self.collector = collector
        self.bindings: dict[str, Any] = {name: f"$.input.{name}" for name in flow.definition.input}
        self.steps: list[Step] = []
        self.humans: set[str] = set()
        self.result: str | None = None
        closure = inspect.getclosurevars(flow.fn)
        self.names: dict[str, Any] = {**vars(builtins), **closure.globals, **closure.nonlocals}
        self.names.update({k: v for k, v in flow.fn.__globals__.items() if k not in self.names})

    def where(self, node: ast.AST | None) -> Location:
        if node is None:
            return self.flow.location
        return Location(display_path(self.sites.file), self.sites.line_of(node), getattr(node, "col_offset", 0) + 1)

    def source(self, node: ast.AST) -> str:
        text = ast.unparse(node)
        return text if len(text) <= 60 else text[:57] + "..."

    def read(self) -> Flow:
        body = list(self.sites.function.body)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str):
                body = body[1:]
        for index, statement in enumerate(body):
            self.statement(statement, last=index == len(body) - 1)
        if not self.steps:
            raise _Refused(
                self.sites.function,
                f"flow '{self.flow.name}' has no steps",
                "a flow awaits at least one decorated function",
            )
        if self.result is None:
            raise _Refused(
                self.sites.function,
                f"flow '{self.flow.name}' does not return its result",
                "end the flow with `return <a result>`",
            )
        return self.flow.definition.model_copy(update={"steps": tuple(self.steps), "result": self.result})

    def statement(self, node: ast.stmt, *, last: bool) -> None:
        if isinstance(node, ast.Pass):
            return
        target: str | None = None
        value: ast.expr | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Await):
            value = node.value
        elif isinstance(node, ast.Return):
            if not last:
                raise _Refused(node, "code after `return` cannot be exported")
            if node.value is None:
                raise _Refused(node, "the flow returns nothing", "return a result")
            if isinstance(node.value, ast.Await):
                step_id = self.await_step(node.value)
                self.result = f"$.steps.{step_id}.output"
            else:
                try:
                    reference = self.binding(node.value)
                except _Refused:
                    reference = None
                if not isinstance(reference, str) or not reference.startswith("$."):
                    raise _Refused(
                        node,
                        f"`return {self.source(node.value)}` cannot be exported",
                        "return a flow input or a step's result (or a field of one)",
                    )
                self.result = reference
            return
        else:
            what = next((text for kind, text in _STATEMENTS.items() if isinstance(node, kind)), "this statement")
            raise _Refused(node, f"{what} cannot be exported", _SHAPE_HINT)
        assert value is not None
        if isinstance(value, ast.Await):
            step_id = self.await_step(value)
            if target is not None:
                human = isinstance(self.steps[-1], CallStep) and self.steps[-1].function in self.humans
                self.bindings[target] = _Decision(step_id) if human else f"$.steps.{step_id}.output"
            return
        if target is not None:
            reference = self.binding(value)
            self.bindings[target] = reference
            return
        raise _Refused(node, f"`{self.source(node)}` cannot be exported", _SHAPE_HINT)

    def resolve(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise _Refused(node, f"name '{node.id}' is not defined")
            return self.names[node.id]
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if not hasattr(base, node.attr):
                raise _Refused(node, f"'{self.source(node.value)}' has no attribute '{node.attr}'")
            return getattr(base, node.attr)
        raise _Refused(node, f"`{self.source(node)}` cannot be exported", "call a decorated function by its name")

    def await_step(self, node: ast.Await) -> str:
        call = node.value
        if not isinstance(call, ast.Call):
            raise _Refused(node, f"`{self.source(node)}` cannot be exported", "await a call of a decorated function")
        step_id = self.sites.id_of(call)
        if step_id is None:  # pragma: no cover - every call of the body has an id
            raise _Refused(call, "this call has no step id")
        target = self.resolve(call.func)
        if target is parallel or target is race:
            self.steps.append(self.group(call, step_id, target is parallel))
        elif target is debate:
            self.steps.append(self.debate(call, step_id))
        elif target is await_human:
            self.steps.append(self.human(call, step_id))
        else:
            self.steps.append(self.call_step(call, step_id, target))
        self.collector.locations[f"flows.{self.flow.name}.steps[{len(self.steps) - 1}]"] = self.where(call)
        return step_id

    def call_step(self, call: ast.Call, step_id: str, target: Any) -> CallStep:
        if isinstance(target, StratumFunction):
            self.collector.add_function(target)
            return CallStep(id=step_id, function=target.name, inputs=self.arguments(call, target.signature, target))
        if isinstance(target, FlowFn):
            self.collector.pending_flows.append(target)
            return CallStep(id=step_id, flow=target.name, inputs=self.arguments(call, target.signature, target))
        name = getattr(target, "__qualname__", None) or self.source(call.func)
        raise _Refused(
            call,
            f"`{self.source(call)}` calls `{name}`, which is not a Stratum function",
            "decorate it with @compute (or @infer), or call it inside one",
        )

    def arguments(self, call: ast.Call, signature: inspect.Signature, target: Any) -> dict[str, Any]:
        if any(isinstance(arg, ast.Starred) for arg in call.args) or any(k.arg is None for k in call.keywords):
            raise _Refused(call, "*args and **kwargs cannot be exported", "pass each argument by name")
        try:
            bound = signature.bind(*call.args, **{str(k.arg): k.value for k in call.keywords})
        except TypeError as error:
            raise _Refused(call, f"`{self.source(call)}`: {error}") from None
        inputs: dict[str, Any] = {}
        for name, parameter in signature.parameters.items():
            if name in bound.arguments:
                value = self.binding(bound.arguments[name])
            elif parameter.default is not parameter.empty and parameter.default is not None:
                value = target.input_codecs[name].to_json(parameter.default, where=name)
                self.literal_check(call, value)
            else:
                continue
            if value is not None:
                inputs[name] = _in_field_order(value, target.definition.input.get(name), target.contracts)
        return inputs

    def literal_check(self, node: ast.AST, value: Any) -> None:
        for text in _strings(value):
            if text.startswith("$."):
                raise _Refused(node, f"the literal {text!r} would read as a reference in a plan")

    def binding(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            decision = self.bindings.get(node.value.id)
            if isinstance(decision, _Decision):
                if node.attr == "value":
                    return f"$.steps.{decision.step_id}.output"
                raise _Refused(
                    node,
                    f"`{self.source(node)}` cannot be exported",
                    "a plan passes on only the decision itself: use `.value`",
                )
        if isinstance(node, ast.Name):
            if node.id in self.bindings:
                found = self.bindings[node.id]
                if isinstance(found, _Decision):
                    raise _Refused(node, f"`{node.id}` is a HumanDecision: pass `{node.id}.value` to export it")
                return found
            value = self.names.get(node.id, _MISSING)
            if value is not _MISSING and _is_json(value):
                self.literal_check(node, value)
                return value
            raise _Refused(node, f"`{node.id}` cannot be exported", _INPUT_HINT)
        if isinstance(node, ast.Attribute):
            base = self.binding(node.value)
            if isinstance(base, str) and base.startswith("$."):
                return f"{base}.{node.attr}"
            raise _Refused(node, f"`{self.source(node)}` cannot be exported", _INPUT_HINT)
        if isinstance(node, ast.Subscript):
            base = self.binding(node.value)
            key = node.slice
            if isinstance(base, str) and base.startswith("$.") and isinstance(key, ast.Constant):
                if isinstance(key.value, int) and not isinstance(key.value, bool) and key.value >= 0:
                    return f"{base}[{key.value}]"
                if isinstance(key.value, str) and key.value.isidentifier():
                    return f"{base}.{key.value}"
            raise _Refused(node, f"`{self.source(node)}` cannot be exported", _INPUT_HINT)
        if isinstance(node, ast.List | ast.Tuple):
            return [self.binding(item) for item in node.elts]
        if isinstance(node, ast.Dict):
            out: dict[str, Any] = {}
            for name, entry in zip(node.keys, node.values, strict=True):
                if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                    raise _Refused(node, "a record's keys must be literal strings to be exported")
                item = self.binding(entry)
                if item is not None:
                    out[name.value] = item
            return out
        if isinstance(node, ast.Call) and is_contract_class(self.resolve(node.func)):
            if node.args or any(keyword.arg is None for keyword in node.keywords):
                raise _Refused(node, f"`{self.source(node)}`: pass a contract's fields by name to export it")
            fields = {str(keyword.arg): self.binding(keyword.value) for keyword in node.keywords}
            order = list(_contract_info(self.resolve(node.func)).contract.fields)
            return {name: fields[name] for name in sorted(fields, key=_position(order)) if fields[name] is not None}
        try:
            value = ast.literal_eval(node)
        except ValueError:
            raise _Refused(node, f"`{self.source(node)}` cannot be exported", _INPUT_HINT) from None
        self.literal_check(node, value)
        return value

    def literal(self, node: ast.expr, what: str) -> Any:
        try:
            return ast.literal_eval(node)
        except ValueError:
            name = self.binding(node) if isinstance(node, ast.Name) else None
            if name is not None and not (isinstance(name, str) and name.startswith("$.")):
                return name
            raise _Refused(node, f"{what} must be a literal to be exported, not `{self.source(node)}`") from None

    def keywords(self, call: ast.Call, allowed: set[str], what: str) -> dict[str, ast.expr]:
        found: dict[str, ast.expr] = {}
        for keyword in call.keywords:
            if keyword.arg is None or keyword.arg not in allowed:
                raise _Refused(keyword, f"{what}() has no option `{keyword.arg}` that exports")
            found[keyword.arg] = keyword.value
        return found

    def group(self, call: ast.Call, step_id: str, is_parallel: bool) -> Step:
        what = "parallel" if is_parallel else "race"
        options = self.keywords(call, {"require", "validate"} if is_parallel else set(), what)
        branches: list[CallStep] = []
        used: set[str] = set()
        for argument in call.args:
            if not isinstance(argument, ast.Call):
                raise _Refused(
                    argument,
                    f"a branch of {what}() must be a call of a decorated function, not `{self.source(argument)}`",
                )
            target = self.resolve(argument.func)
            if not isinstance(target, StratumFunction):
                raise _Refused(argument, f"a branch of {what}() must call an @infer or @compute function")
            branch_id = self.sites.id_of(argument) or target.name
            base, number = branch_id, 2
            while branch_id in used:
                branch_id, number = f"{base}_{number}", number + 1
            used.add(branch_id)
            self.collector.add_function(target)
            branches.append(
                CallStep(id=branch_id, function=target.name, inputs=self.arguments(argument, target.signature, target))
            )
        if not branches:
            raise _Refused(call, f"{what}() has no branches")
        if not is_parallel:
            return RaceStep(id=step_id, race=tuple(branches))
        require = self.literal(options["require"], "require") if "require" in options else "all"
        validate = None
        if "validate" in options:
            validate = self.literal(options["validate"], "validate")
            if not isinstance(validate, str):
                raise _Refused(
                    options["validate"],
                    "a Python callable in validate cannot be exported",
                    "write it as an expression string over `outputs`",
                )
        return ParallelStep(
            id=step_id, parallel=ParallelGroup(require=require, validate_=validate, steps=tuple(branches))
        )

    def debate(self, call: ast.Call, step_id: str) -> DebateStep:
        options = self.keywords(call, {"agents", "topic", "rounds", "synthesize", "converge_on"}, "debate")
        if len(call.args) > 3:
            raise _Refused(call, "debate() takes at most agents, topic and rounds by position")
        for name, node in zip(("agents", "topic", "rounds"), call.args, strict=False):
            if name in options:
                raise _Refused(node, f"debate() got {name} twice")
            options[name] = node
        if "agents" not in options or "topic" not in options:
            raise _Refused(call, "debate() needs agents=[...] and topic=...")
        agents_node = options["agents"]
        if not isinstance(agents_node, ast.List | ast.Tuple):
            raise _Refused(agents_node, "debate agents must be a list of @infer functions to be exported")
        agents = []
        agree_on = None
        for node in agents_node.elts:
            agent = self.resolve(node)
            if not isinstance(agent, StratumFunction):
                raise _Refused(node, f"`{self.source(node)}` is not an @infer function")
            self.collector.add_function(agent)
            agents.append(agent.name)
            agree_on = agree_on or getattr(getattr(agent, "options", None), "agree_on", None)
        synthesize = None
        if "synthesize" in options:
            judge = self.resolve(options["synthesize"])
            if not isinstance(judge, StratumFunction):
                raise _Refused(options["synthesize"], "synthesize must be an @infer function")
            self.collector.add_function(judge)
            synthesize = judge.name
        return DebateStep(
            id=step_id,
            debate=Debate(
                agents=tuple(agents),
                topic=self.binding(options["topic"]),
                rounds=self.literal(options["rounds"], "rounds") if "rounds" in options else 2,
                synthesize=synthesize,
                converge_on=(
                    self.literal(options["converge_on"], "converge_on") if "converge_on" in options else agree_on
                ),
                stop_when_converged="converge_on" in options,
            ),
        )

    def human(self, call: ast.Call, step_id: str) -> CallStep:
        options = self.keywords(
            call, {"question", "context", "decision_type", "options", "timeout", "on_timeout"}, "await_human"
        )
        context_node = options.get("context")
        question = self.literal(options["question"], "question") if "question" in options else None
        context: dict[str, Any] = {}
        if isinstance(context_node, ast.Constant) and isinstance(context_node.value, str):
            question = question or context_node.value
        elif context_node is not None:
            bound = self.binding(context_node)
            if not isinstance(bound, dict):
                raise _Refused(context_node, "context must be a {name: value} record (or the question) to be exported")
            context = bound
        decision_type = self.resolve(options["decision_type"]) if "decision_type" in options else bool
        timeout = self.timeout(options["timeout"]) if "timeout" in options else None
        try:
            function, contracts = human_function(
                step_id,
                question=question or "Please decide.",
                context=context,
                decision_type=decision_type,
                options=self.literal(options["options"], "options") if "options" in options else None,
                timeout=timeout,
                on_timeout=self.literal(options["on_timeout"], "on_timeout") if "on_timeout" in options else "raise",
            )
        except (TypeError, ValueError) as error:
            raise _Refused(call, str(error)) from None
        self.collector.add_human(function, contracts, self.where(call))
        self.humans.add(function.name)
        return CallStep(id=step_id, function=function.name, inputs=context)

    def timeout(self, node: ast.expr) -> float | datetime.timedelta:
        if isinstance(node, ast.Call) and self.resolve(node.func) is datetime.timedelta and not node.args:
            values = {str(k.arg): self.literal(k.value, "a timedelta argument") for k in node.keywords}
            return datetime.timedelta(**values)
        value = self.literal(node, "timeout")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _Refused(node, "timeout must be a number of seconds or a timedelta(...) to be exported")
        return float(value)


_MISSING = object()


def _position(order: list[str]) -> Any:
    return lambda name: order.index(name) if name in order else len(order)


def _in_field_order(value: Any, spec: TypeSpec | None, contracts: Mapping[str, Contract]) -> Any:
    """A record binding with its keys in the contract's field order: the order Python gives the same record's JSON."""
    if spec is None or not isinstance(value, dict):
        return value
    contract = contracts.get(str(spec.type))
    if contract is None:
        return value
    order = list(contract.fields)
    return {
        key: _in_field_order(value[key], contract.fields.get(key), contracts)
        for key in sorted(value, key=_position(order))
    }


@dataclass(frozen=True)
class _Decision:
    """The binding of an `await_human` result: in a plan, its `.value` is the step's output."""

    step_id: str


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


# -- the module --------------------------------------------------------------------------------------------------


def _members(module: ModuleType, attr: str | None) -> list[Any]:
    if attr is not None:
        target: Any = module
        for part in attr.split("."):
            if not hasattr(target, part):
                raise PlanError(
                    [
                        Problem(
                            getattr(module, "__file__", None) or module.__name__,
                            1,
                            1,
                            "",
                            f"module '{module.__name__}' has no attribute '{attr}'",
                        )
                    ]
                )
            target = getattr(target, part)
        return [target]
    found = []
    for value in vars(module).values():
        owner = getattr(value, "__module__", None)
        if owner != module.__name__:
            continue
        if isinstance(value, FlowFn | StratumFunction) or is_contract_class(value):
            found.append(value)
    return found


def _flow(flow: FlowFn[Any, Any], collector: _Collector) -> None:
    path = f"flows.{flow.name}"
    owner = collector.owners.get(path)
    if owner is flow:
        return
    if owner is not None:
        collector.problem(flow.location, path, f"two different flows are named '{flow.name}'")
        return
    collector.owners[path] = flow
    collector.locations[path] = flow.location
    collector.add_contracts(flow.contracts, flow.location, path)
    try:
        reader = _FlowReader(flow, collector)
        collector.flows[flow.name] = reader.read()
    except _Refused as refused:
        where = reader.where(refused.node) if refused.node is not None and flow.sites else flow.location
        collector.problem(where, path, refused.message, refused.hint)


def _description(module: ModuleType) -> str | None:
    doc = inspect.getdoc(module)
    return doc.split("\n\n")[0].replace("\n", " ").strip() if doc else None


def export_plan(module: ModuleType | str, attr: str | None = None, *, source: str = "<export>") -> str:
    """The `.stratum.yaml` text of a library module (or of one flow or function of it, with `attr`).

    Contracts, functions and flows defined in the module are exported with everything they use. Raises PlanError
    with every problem at once, each located in the Python source: a construct or callable that has no plan form,
    or a problem the plan checker finds in the result. `source` names the plan in problems from the checker.
    """
    if isinstance(module, str):
        module = importlib.import_module(module)
    collector = _Collector()
    for member in _members(module, attr):
        if isinstance(member, FlowFn):
            collector.pending_flows.append(member)
        elif isinstance(member, StratumFunction):
            collector.add_function(member)
        elif is_contract_class(member):
            collector.add_contract_class(member)
        else:
            where = Location(getattr(module, "__file__", None) or module.__name__, 1)
            collector.problem(where, "", f"'{attr}' is not a flow, a decorated function or a contract")
    while collector.pending_flows:
        _flow(collector.pending_flows.pop(0), collector)
    if collector.problems:
        raise PlanError(collector.problems)
    header = (
        f"# Exported from the Python module {module.__name__} by `stratum export`; edit the module, then export again."
    )
    base_dir = Path(source).parent if not source.startswith("<") else None
    text = plan_text(
        contracts=collector.contracts,
        functions=collector.functions,
        flows=collector.flows,
        description=_description(module),
        header=header,
        python_path=_python_path(collector.functions, base_dir or Path.cwd()),
    )
    try:
        load_plan_text(text, source=source, base_dir=base_dir, check_imports=True)
    except PlanError as error:
        raise PlanError([_relocate(problem, collector.locations) for problem in error.problems]) from None
    return text


def _python_path(functions: Mapping[str, Function], plan_dir: Path) -> list[str]:
    """The folders, relative to `plan_dir`, from which the modules of the `call:` targets were imported.

    Recorded in the plan so that it finds them wherever it is loaded from (`stratum serve`, `stratum resume`, another
    working folder); the plan's own folder and installed packages need no entry.
    """
    here = plan_dir.resolve()
    installed = {Path(p).resolve() for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
    found: list[str] = []
    for fn in functions.values():
        if not isinstance(fn, ComputeFunction) or fn.call is None:
            continue
        root = _import_root(fn.call.partition(":")[0])
        if root is None or root == here or root in installed:
            continue
        entry = Path(os.path.relpath(root, here)).as_posix()
        if entry not in found:
            found.append(entry)
    return found


def _import_root(module_name: str) -> Path | None:
    """The sys.path folder that the top-level package of `module_name` was imported from, if it was."""
    top = sys.modules.get(module_name.split(".")[0])
    if top is None:
        return None
    locations = list(getattr(top, "__path__", None) or [])  # a package (regular or namespace): its folder
    if locations:
        return Path(locations[0]).resolve().parent
    file = getattr(top, "__file__", None)
    return Path(file).resolve().parent if file else None


def _relocate(problem: Problem, locations: Mapping[str, Location]) -> Problem:
    """A problem the checker found in the exported text, placed at the Python source it came from."""
    best = max(
        (path for path in locations if problem.path == path or problem.path.startswith((f"{path}.", f"{path}["))),
        key=len,
        default=None,
    )
    if best is None:
        return problem
    where = locations[best]
    return Problem(where.file, where.line, where.column, problem.path, problem.message, problem.hint)
