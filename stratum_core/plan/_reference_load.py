"""The loader's two hooks for reference plans: check and translate before the build, finish after the checker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stratum_core.errors import Problem
from stratum_core.plan._model import TypeSpec, Workflow
from stratum_core.plan._reference import entry_flow, reference_problems, translate_reference
from stratum_core.plan._reference_schema import reference_schema_problems
from stratum_core.plan._yaml import Path, SourceMap, format_path

if TYPE_CHECKING:
    from stratum_core.plan._loader import LoadedPlan

__all__ = ["finish_reference", "reference_data"]

_LATER_KEYS: dict[str, set[str]] = {}


def _later_hint(problem: Problem, version: str) -> Problem:
    """Say from which version an unknown key exists (`skip_if` in a 0.1 plan)."""
    from stratum_core.plan._reference_schema import REFERENCE_VERSIONS, reference_schema

    if not problem.message.startswith("unknown key '"):
        return problem
    key = problem.message.removeprefix("unknown key '").removesuffix("'")
    for later in REFERENCE_VERSIONS[REFERENCE_VERSIONS.index(version) + 1 :]:
        if key in _keys_of(reference_schema(later), later):
            hint = f'\'{key}\' exists from version "{later}" on; this plan says version "{version}"'
            return Problem(problem.file, problem.line, problem.column, problem.path, problem.message, hint)
    return problem


def _keys_of(schema: Any, version: str) -> set[str]:
    found = _LATER_KEYS.get(version)
    if found is not None:
        return found
    keys: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if isinstance(node.get("properties"), Mapping):
                keys.update(node["properties"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    _LATER_KEYS[version] = keys
    return keys


def reference_data(
    data: dict[str, Any], source_map: SourceMap, source: str, problems: list[Problem]
) -> dict[str, Any] | None:
    """The data of our plan for reference plan `data`, or None (with `problems` filled) when it breaks its rules."""
    version = str(data["version"])
    found = [_later_hint(p, version) for p in reference_schema_problems(data, source_map, source, version)]
    if not found:
        found = reference_problems(data, version, source, source_map)
    if found or problems:
        problems.extend(found)
        return None
    translation = translate_reference(data)
    for made, at in translation.positions.items():
        source_map.values.setdefault(made, source_map.value(at))
        source_map.keys.setdefault(made, source_map.key(at))
    return translation.data


def _report(loaded: LoadedPlan, path: Path, message: str, hint: str | None = None) -> Problem:
    line, column = loaded.source_map.value(path)
    return Problem(loaded.source, line, column, format_path(path), message, hint)


def finish_reference(loaded: LoadedPlan, *, untrusted: bool) -> list[Problem]:
    """Checks the translation leaves to us (file checks, gate conditions, iterations), and the `workflow` block."""
    from stratum_core.engine._output_checks import file_condition_problem
    from stratum_core.errors import ExpressionError
    from stratum_core.expressions import compile_expression

    problems: list[Problem] = []
    plan = loaded.plan
    for name, fn in plan.functions.items():
        for index, text in enumerate(fn.file_ensure):
            path: Path = ("functions", name, "ensure")
            if untrusted:
                problems.append(
                    _report(
                        loaded,
                        path,
                        f"ensure: {text}: file checks read the project's files",
                        "a plan sent by a client cannot use file_exists, file_contains or no_file_conflicts",
                    )
                )
                continue
            problem = file_condition_problem(text)
            if problem is not None:
                problems.append(_report(loaded, (*path, index), f"ensure: {text}: {problem}"))
    for located in loaded.steps.values():
        for path, step in located:
            route = getattr(step, "route", None)
            if route is None:
                continue
            for key in ("skip_if", "exit_criterion"):
                text = getattr(route, key)
                if text is None:
                    continue
                try:
                    compile_expression(text)
                except (ExpressionError, ValueError) as error:
                    problems.append(_report(loaded, (*path, key), f"{key}: {error}"))
    raw_workflow = loaded.data.get("workflow") if isinstance(loaded.data, Mapping) else None
    if isinstance(raw_workflow, Mapping) and plan.flows:
        inputs = {
            str(key): TypeSpec(
                type=str(spec.get("type")),
                required=bool(spec.get("required", True)),
                default=spec.get("default"),
            )
            for key, spec in (raw_workflow.get("input") or {}).items()
            if isinstance(spec, Mapping)
        }
        loaded.plan = plan.model_copy(
            update={
                "workflow": Workflow(
                    name=str(raw_workflow.get("name")),
                    description=str(raw_workflow.get("description")),
                    input=inputs,
                    flow=entry_flow({"flows": dict(plan.flows), "workflow": raw_workflow}),
                )
            }
        )
    return problems
