"""Static checks of library definitions, by the plan checker itself, with problems located in the Python source.

A decorated function is written out as a one-function plan and loaded: every rule a plan obeys (expression field
names against the contracts, quorum options, decision forms, on_timeout values, ...) is checked by the same code,
and each problem is reported at the decorator's file and line with the plan path and message the checker gives.
Python callables and in-memory call targets stand in as placeholders: they cannot be read statically.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stratum_core.errors import PlanError, Problem
from stratum_core.library._conditions import is_python_token
from stratum_core.library._emit import plan_text
from stratum_core.library._types import DefinitionProblem
from stratum_core.plan import ComputeFunction, Contract, Function, InferFunction, Refine, load_plan_text

__all__ = ["Location", "check_function", "definition_error", "display_path", "location_of"]

_PLACEHOLDER_CALL = "stratum_library_check:target"


@dataclass(frozen=True)
class Location:
    """Where a Python definition is: file and line (of its first decorator)."""

    file: str
    line: int
    column: int = 1


def display_path(file: str) -> str:
    """A source path as problems show it: relative to the current folder when it is inside it."""
    try:
        relative = os.path.relpath(file)
    except ValueError:  # another drive (Windows)
        return file
    return file if relative.startswith("..") else relative


def location_of(obj: Callable[..., Any] | type) -> Location:
    """The source location of a function or class (`<unknown>` when Python does not know it)."""
    target = inspect.unwrap(obj) if callable(obj) and not isinstance(obj, type) else obj
    try:
        file = inspect.getsourcefile(target) or inspect.getfile(target)
    except TypeError:
        return Location("<unknown>", 1)
    try:
        _, line = inspect.getsourcelines(target)
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        line = code.co_firstlineno if code is not None else 1
    return Location(display_path(file), max(line, 1))


def definition_error(where: Location, problems: Iterable[DefinitionProblem], *, prefix: str) -> PlanError:
    """A PlanError for problems found in a Python definition at `where`; paths start with `prefix`."""
    return PlanError(
        [
            Problem(where.file, where.line, where.column, f"{prefix}.{p.path}" if p.path else prefix, p.message, p.hint)
            for p in problems
        ]
    )


def _checkable(fn: Function) -> Function:
    """`fn` with Python callables and in-memory targets replaced by placeholders the checker accepts."""
    update: dict[str, Any] = {}
    if any(is_python_token(text) for text in fn.given):
        update["given"] = tuple("True" if is_python_token(text) else text for text in fn.given)
    if any(is_python_token(text) for text in fn.ensure):
        update["ensure"] = tuple("True" if is_python_token(text) else text for text in fn.ensure)
    if isinstance(fn, ComputeFunction) and fn.call is not None:
        update["call"] = _PLACEHOLDER_CALL
    if isinstance(fn, InferFunction) and fn.refine is not None:
        refine = fn.refine
        until = "True" if is_python_token(refine.until) else refine.until
        feedback = refine.feedback
        if feedback is not None and is_python_token(feedback):
            feedback = "'feedback'"
        update["refine"] = Refine(until=until, feedback=feedback, max_iterations=refine.max_iterations)
    return fn.model_copy(update=update) if update else fn


def check_function(fn: Function, contracts: Mapping[str, Contract], where: Location) -> None:
    """Check one function (and the contracts it uses) as the plan checker would; raise PlanError located at `where`."""
    text = plan_text(contracts=contracts, functions={fn.name: _checkable(fn)}, flows={})
    try:
        load_plan_text(text, source="<library>", check_imports=False)
    except PlanError as error:
        raise PlanError(
            [Problem(where.file, where.line, where.column, p.path, p.message, p.hint) for p in error.problems]
        ) from None
