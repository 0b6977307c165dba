"""Load `.stratum.yaml` plans: YAML -> schema pass -> typed models -> static checks, every problem at once.

Version "1" plans normalise into the models (`values:` becomes `enum`, `skip_if: X` becomes `when: "not (X)"`, a
string `output:` names a contract, durations become seconds). Reference plans ("0.1", "0.2", "0.3") are checked by
their own version's rules and translated first (`_reference_load`). A plan that fails any pass is answered with one
PlanError listing everything wrong with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from pydantic import BaseModel, ValidationError

from stratum_core.errors import BudgetExceeded, PlanError, Problem
from stratum_core.expressions._budget import expression_budget
from stratum_core.plan._imports import CallChecks
from stratum_core.plan._learned import LearnedContext
from stratum_core.plan._model import (
    AdaptiveFunction,
    CallStep,
    ComputeFunction,
    Contract,
    DebateStep,
    Flow,
    ForEachStep,
    Function,
    HumanFunction,
    InferFunction,
    ModelPrice,
    ParallelStep,
    Plan,
    RaceStep,
    Step,
    TypeSpec,
)
from stratum_core.plan._plan_schema import describe, schema_problems
from stratum_core.plan._reference_schema import REFERENCE_VERSIONS
from stratum_core.plan._schema import content_hash
from stratum_core.plan._yaml import Path, SourceMap, format_path, parse_yaml

__all__ = [
    "PLAN_SUFFIXES",
    "LoadedPlan",
    "find_plan_files",
    "load_plan",
    "load_plan_text",
    "load_plans",
    "parse_duration",
]

PLAN_SUFFIXES = (".stratum.yaml", ".stratum.yml")
CHECK_MAX_STEPS = 1_000_000
"""Steps the checker may spend evaluating a plan's constant expressions, all of them together."""
CHECK_MAX_SECONDS = 1.0
"""Seconds the checker may spend evaluating a plan's constant expressions, all of them together."""

_FUNCTIONS: dict[str, type[BaseModel]] = {
    "infer": InferFunction,
    "compute": ComputeFunction,
    "human": HumanFunction,
    "adaptive": AdaptiveFunction,
}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: float | str) -> float:
    """Seconds from a number or '30s', '5m', '24h', '2d'; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class LoadedPlan:
    """A plan together with what the checker needs to locate problems in its text."""

    plan: Plan
    data: dict[str, Any]
    source_map: SourceMap
    text: str
    source: str
    base_dir: FilePath | None
    steps: dict[str, list[tuple[Path, Step]]] = field(default_factory=dict)
    """Per flow, its top-level steps that built, each with its path in the document."""
    broken: set[Path] = field(default_factory=set)
    """Paths of entities (contracts, functions, flows, steps) that did not build: the checker stays quiet on them."""
    learned: dict[str, LearnedContext] = field(default_factory=dict)
    """Per infer function with `learned:`, the learned context the checker read and accepted."""


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _type_spec(raw: Any) -> Any:
    """A field spec with the 0.1 spelling `values` turned into `enum`, recursively."""
    if isinstance(raw, str):
        return {"type": raw}
    if not isinstance(raw, Mapping):
        return raw
    spec = dict(raw)
    if "values" in spec:
        spec.setdefault("enum", spec.pop("values"))
        spec.pop("values", None)
    if "items" in spec:
        spec["items"] = _type_spec(spec["items"])
    if isinstance(spec.get("properties"), Mapping):
        spec["properties"] = {key: _type_spec(value) for key, value in spec["properties"].items()}
    return spec


def _fields(raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        return raw
    return {key: _type_spec(value) for key, value in raw.items()}


def _function_kwargs(name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = dict(raw)
    kwargs["name"] = name
    if "input" in kwargs:
        kwargs["input"] = _fields(kwargs["input"])
    if "output" in kwargs:
        kwargs["output"] = _type_spec(kwargs["output"])
    for key in ("given", "ensure", "context"):
        if key in kwargs:
            kwargs[key] = _as_tuple(kwargs[key])
    if "timeout" in kwargs:
        try:
            kwargs["timeout"] = parse_duration(kwargs["timeout"])
        except (ValueError, TypeError):
            pass  # the schema pass has reported it; the model pass drops it
    if "options" in kwargs:
        kwargs["options"] = _as_tuple(kwargs["options"])
    return kwargs


def _step_common(raw: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = dict(raw)
    if "depends_on" in kwargs:
        kwargs["depends_on"] = _as_tuple(kwargs["depends_on"])
    if "skip_if" in kwargs:
        skip = kwargs.pop("skip_if")
        condition = f"not ({skip})"
        kwargs["when"] = f"({kwargs['when']}) and {condition}" if kwargs.get("when") else condition
    return kwargs


def _call_kwargs(raw: Any, *, default_id: str | None = None) -> Any:
    if not isinstance(raw, Mapping):
        return raw
    kwargs = _step_common(raw)
    kwargs["kind"] = "call"
    if default_id is not None:
        kwargs.setdefault("id", default_id)
    return kwargs


def step_kind(raw: Mapping[str, Any]) -> str:
    """Which kind of step a mapping is, from the key it has: parallel, race, for_each, debate, else call."""
    for kind in ("parallel", "race", "for_each", "debate"):
        if kind in raw:
            return kind
    return "call"


def _step_kwargs(raw: Mapping[str, Any]) -> tuple[type[BaseModel], dict[str, Any]]:
    kind = step_kind(raw)
    kwargs = _step_common(raw)
    kwargs["kind"] = kind
    if kind == "parallel" and isinstance(kwargs["parallel"], Mapping):
        group = dict(kwargs["parallel"])
        if isinstance(group.get("steps"), list):
            group["steps"] = [_call_kwargs(item) for item in group["steps"]]
        kwargs["parallel"] = group
        return ParallelStep, kwargs
    if kind == "race":
        if isinstance(kwargs["race"], list):
            kwargs["race"] = [_call_kwargs(item) for item in kwargs["race"]]
        return RaceStep, kwargs
    if kind == "for_each":
        kwargs["step"] = _call_kwargs(kwargs.get("step"), default_id=str(raw.get("id", "")))
        return ForEachStep, kwargs
    if kind == "debate":
        return DebateStep, kwargs
    return CallStep, kwargs


def _calls_once(kwargs: Mapping[str, Any]) -> bool:
    """Whether every call in a step names exactly one of `function` and `flow`."""
    kind = kwargs.get("kind")
    if kind == "call":
        calls: list[Any] = [kwargs]
    elif kind == "parallel":
        group = kwargs.get("parallel")
        steps = group.get("steps") if isinstance(group, Mapping) else None
        calls = list(steps) if isinstance(steps, list) else []
    elif kind == "race":
        calls = list(kwargs["race"]) if isinstance(kwargs.get("race"), list) else []
    elif kind == "for_each":
        calls = [kwargs.get("step")]
    else:
        return True
    return all(isinstance(call, Mapping) and (("function" in call) != ("flow" in call)) for call in calls)


class _Builder:
    """Builds models entity by entity, so one broken function does not hide the problems of the others."""

    def __init__(self, loaded: LoadedPlan, reported: list[Problem], reported_paths: set[Path]) -> None:
        self.loaded = loaded
        self.problems: list[Problem] = []
        self.reported_paths = reported_paths
        self.reported = reported

    def quiet_under(self, path: Path) -> bool:
        return any(bad[: len(path)] == path for bad in self.reported_paths)

    def build(self, model: type[BaseModel], kwargs: Any, path: Path, *, required: set[str]) -> Any:
        """Validate `kwargs` as `model`; on failure, drop the failing keys and try again (None when hopeless)."""
        if not isinstance(kwargs, Mapping):
            self.loaded.broken.add(path)
            return None
        current = dict(kwargs)
        for _ in range(4):
            try:
                return model.model_validate(current)
            except ValidationError as error:
                bad: set[str] = set()
                for item in error.errors():
                    location = tuple(item["loc"])
                    if location:
                        bad.add(str(location[0]))
                    self.model_problem(path, location, item)
                self.loaded.broken.add(path)
                if not bad or bad & required:
                    return None
                current = {key: value for key, value in current.items() if key not in bad}
        return None  # pragma: no cover - four rounds drop every key that can fail

    def model_problem(self, path: Path, location: tuple[Any, ...], item: Any) -> None:
        """A model error the schema pass missed: say it in our words (the schema pass usually got there first)."""
        full = (*path, *(part for part in location if isinstance(part, str | int)))
        if self.quiet_under(path):
            return
        kind = str(item.get("type", ""))
        key = str(location[-1]) if location else ""
        if kind == "missing":
            message = f"missing required key '{key}'"
        elif kind == "extra_forbidden":
            message = f"unknown key '{key}'"
        else:
            message = f"invalid value {describe(item.get('input'))}"
        line, column = self.loaded.source_map.value(full)
        self.problems.append(Problem(self.loaded.source, line, column, format_path(full), message))

    def contracts(self, raw: Any) -> dict[str, Contract]:
        built: dict[str, Contract] = {}
        if not isinstance(raw, Mapping):
            return built
        for name, fields in raw.items():
            path: Path = ("contracts", name)
            if not isinstance(fields, Mapping):
                self.loaded.broken.add(path)
                continue
            good = {}
            for field_name, spec in fields.items():
                built_spec = self.build(TypeSpec, _type_spec(spec), (*path, field_name), required=set())
                if built_spec is not None:
                    good[field_name] = built_spec
            built[name] = Contract(name=name, fields=good)
        return built

    def functions(self, raw: Any) -> dict[str, Function]:
        built: dict[str, Function] = {}
        if not isinstance(raw, Mapping):
            return built
        for name, body in raw.items():
            path: Path = ("functions", name)
            model = _FUNCTIONS.get(str(body.get("mode"))) if isinstance(body, Mapping) else None
            if model is None or not isinstance(body, Mapping):
                self.loaded.broken.add(path)
                continue
            required = {key for key, info in model.model_fields.items() if info.is_required()}
            function = self.build(model, _function_kwargs(name, body), path, required=required)
            if function is not None:
                built[name] = function
        return built

    def prices(self, raw: Any) -> dict[str, ModelPrice]:
        built: dict[str, ModelPrice] = {}
        if not isinstance(raw, Mapping):
            return built
        for name, body in raw.items():
            if not isinstance(body, Mapping):
                continue
            price = self.build(ModelPrice, dict(body), ("prices", name), required={"input", "output"})
            if price is not None:
                built[str(name)] = price
        return built

    def flows(self, raw: Any) -> dict[str, Flow]:
        built: dict[str, Flow] = {}
        if not isinstance(raw, Mapping):
            return built
        for name, body in raw.items():
            path: Path = ("flows", name)
            if not isinstance(body, Mapping):
                self.loaded.broken.add(path)
                continue
            located: list[tuple[Path, Step]] = []
            raw_steps = body.get("steps")
            for index, raw_step in enumerate(raw_steps if isinstance(raw_steps, list) else []):
                step_path: Path = (*path, "steps", index)
                if not isinstance(raw_step, Mapping):
                    self.loaded.broken.add(step_path)
                    continue
                model, kwargs = _step_kwargs(raw_step)
                if not _calls_once(kwargs):
                    self.loaded.broken.add(step_path)  # the schema pass has said why
                    continue
                step = self.build(model, kwargs, step_path, required=set(kwargs))
                if step is not None:
                    located.append((step_path, step))
            kwargs = dict(body)
            kwargs["name"] = name
            kwargs["steps"] = [step for _, step in located]
            if "input" in kwargs:
                kwargs["input"] = _fields(kwargs["input"])
            if "output" in kwargs:
                kwargs["output"] = _type_spec(kwargs["output"])
            flow = self.build(Flow, kwargs, path, required={"name", "steps"})
            if flow is not None:
                built[name] = flow
                self.loaded.steps[name] = located
        return built


def load_plan_text(
    text: str,
    *,
    source: str = "<string>",
    base_dir: str | FilePath | None = None,
    check_imports: CallChecks = True,
    untrusted: bool = False,
    runtime_checks: list[Problem] | None = None,
    allowed_models: Collection[str] | None = None,
) -> Plan:
    """Load and check a plan from its text; `source` names it in problems, `base_dir` is where `call:` modules live.

    `runtime_checks`, when given, receives what the checker could not decide and the engine checks when the plan runs
    (what `stratum validate --strict` prints as warnings), located like problems.

    `check_imports` says how `call:` targets are checked: True imports their modules (their top-level code runs),
    "static" finds each module and the name in its source without running anything, False skips them.
    `untrusted` is for plans written by an agent or a client: `call:` targets are refused (expressions only; nothing
    is imported), sizes are bounded and patterns must run in RE2 (see `_untrusted.py`); `allowed_models`, when given,
    are the only models its infer functions may name (the server's configured ones).

    Raises:
        PlanError: with every problem found, sorted by position.
    """
    if untrusted:
        from stratum_core.plan._untrusted import check_size

        check_size(text, source=source)
        check_imports = False
    try:
        with expression_budget(max_steps=CHECK_MAX_STEPS, max_seconds=CHECK_MAX_SECONDS):
            loaded = _load(
                text,
                source=source,
                base_dir=base_dir,
                check_imports=check_imports,
                untrusted=untrusted,
                runtime_checks=runtime_checks,
                allowed_models=allowed_models,
            )
    except RecursionError:  # the passes bound nesting where they know it; this is the last line of defence
        raise PlanError(
            [Problem(source, 1, 1, "", "the plan is nested too deeply to check", "flatten its nesting")]
        ) from None
    except BudgetExceeded as exceeded:  # constant expressions are evaluated when checked: bounded in total
        what = (
            f"too many steps in total (limit {CHECK_MAX_STEPS})"
            if exceeded.dimension == "expression_steps"
            else f"too long in total (limit {CHECK_MAX_SECONDS} s)"
        )
        message = f"checking the plan's constant expressions took {what}"
        hint = "the plan has too many or too costly expressions that read no data"
        raise PlanError([Problem(source, 1, 1, "", message, hint)]) from None
    return loaded.plan.model_copy(update={"untrusted": True}) if untrusted else loaded.plan


def _load(
    text: str,
    *,
    source: str,
    base_dir: str | FilePath | None,
    check_imports: CallChecks,
    untrusted: bool = False,
    runtime_checks: list[Problem] | None = None,
    allowed_models: Collection[str] | None = None,
) -> LoadedPlan:
    if untrusted:
        from stratum_core.plan._untrusted import MAX_EXPANDED_CHARS

        parsed = parse_yaml(text, source=source, max_expanded_chars=MAX_EXPANDED_CHARS)
    else:
        parsed = parse_yaml(text, source=source)
    problems = list(parsed.problems)
    data = parsed.data
    if isinstance(data, dict) and data.get("version") in REFERENCE_VERSIONS:
        from stratum_core.plan._reference_load import reference_data

        data = reference_data(data, parsed.source_map, source, problems)
    else:
        problems.extend(schema_problems(parsed.data, parsed.source_map, source))
    if not isinstance(data, dict):
        raise PlanError(problems)
    version = data.get("version")
    folder = str(FilePath(base_dir).resolve()) if base_dir is not None else None
    python_path = data.get("python_path")
    python_path = tuple(python_path) if isinstance(python_path, list) else ()
    loaded = LoadedPlan(
        plan=Plan(
            version=str(version) if isinstance(version, str) else "1",
            source=source,
            text_hash=content_hash(text),
            base_dir=folder,
            python_path=python_path,
        ),
        data=data,
        source_map=parsed.source_map,
        text=text,
        source=source,
        base_dir=FilePath(base_dir) if base_dir is not None else None,
    )
    reported_paths = {_problem_path(problem) for problem in problems}
    builder = _Builder(loaded, problems, reported_paths)
    contracts = builder.contracts(data.get("contracts"))
    functions = builder.functions(data.get("functions"))
    flows = builder.flows(data.get("flows"))
    prices = builder.prices(data.get("prices"))
    description = data.get("description")
    loaded.plan = Plan(
        version=loaded.plan.version,
        description=description if isinstance(description, str) else None,
        contracts=contracts,
        functions=functions,
        flows=flows,
        prices=prices,
        source=source,
        text=text,
        text_hash=loaded.plan.text_hash,
        base_dir=folder,
        python_path=python_path,
    )
    problems.extend(builder.problems)
    from stratum_core.plan._checker import check_plan

    problems.extend(
        check_plan(
            loaded,
            check_imports=check_imports,
            untrusted=untrusted,
            runtime_checks=runtime_checks,
            allowed_models=allowed_models,
        )
    )
    if loaded.plan.version in REFERENCE_VERSIONS:
        from stratum_core.plan._reference_load import finish_reference

        problems.extend(finish_reference(loaded, untrusted=untrusted))
    if problems:
        raise PlanError(problems)
    if loaded.learned:
        functions = dict(loaded.plan.functions)
        for name, learned in loaded.learned.items():
            functions[name] = functions[name].model_copy(update={"learned_context": learned})
        loaded.plan = loaded.plan.model_copy(update={"functions": functions})
    return loaded


def _problem_path(problem: Problem) -> Path:
    """The document path a schema problem is about (its path text parsed back)."""
    parts: list[str | int] = []
    for piece in re.finditer(r"([^.\[\]]+)|\[(\d+)\]", problem.path):
        name, index = piece.groups()
        parts.append(int(index) if index is not None else name)
    return tuple(parts)


def _read(path: FilePath, source: str) -> str:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise PlanError([Problem(source, 1, 1, "", f"cannot read the plan: {error.strerror or error}")]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise PlanError([Problem(source, line, 1, "", "the plan is not UTF-8 text")]) from None


def load_plan(
    path: str | FilePath, *, check_imports: CallChecks = True, runtime_checks: list[Problem] | None = None
) -> Plan:
    """Load and check the plan file at `path` (shown in problems as given); `call:` modules are looked up beside it.

    Raises:
        PlanError: with every problem found, sorted by position.
    """
    file = FilePath(path)
    source = str(path)
    text = _read(file, source)
    return load_plan_text(
        text, source=source, base_dir=file.parent, check_imports=check_imports, runtime_checks=runtime_checks
    )


def find_plan_files(directory: str | FilePath, *, recursive: bool = True) -> list[FilePath]:
    """The `*.stratum.yaml` and `*.stratum.yml` files in `directory`, sorted."""
    folder = FilePath(directory)
    pattern: Callable[[str], Any] = folder.rglob if recursive else folder.glob
    found = {file for suffix in PLAN_SUFFIXES for file in pattern(f"*{suffix}") if file.is_file()}
    return sorted(found)


def load_plans(
    directory: str | FilePath, *, recursive: bool = False, check_imports: CallChecks = True
) -> tuple[list[Plan], list[PlanError]]:
    """Load every plan in `directory`: the plans that loaded, and one PlanError per plan that did not.

    A broken plan never stops the others from loading (the server serves what it can).
    """
    plans: list[Plan] = []
    errors: list[PlanError] = []
    for file in find_plan_files(directory, recursive=recursive):
        try:
            plans.append(load_plan(file, check_imports=check_imports))
        except PlanError as error:
            errors.append(error)
    return plans, errors
