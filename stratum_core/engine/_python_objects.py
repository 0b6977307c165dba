"""Python callables that a plan built by the Python library refers to by token: conditions and compute targets.

A plan file can only hold text: sandboxed expressions and `call:` import paths. The library also lets a developer
write `ensure=lambda r: r.confidence > 0.7` or decorate a function defined inside another one; those are registered
here and the library's in-memory plan names them by a token. A token is never a valid expression or import path,
so a plan loaded from a file (which the checker has passed) can never reach a registered callable.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from stratum_core.expressions import Expression, describe_failure

__all__ = [
    "TOKEN_PREFIX",
    "Condition",
    "PythonCondition",
    "describe",
    "python_condition",
    "python_target",
    "register_condition",
    "register_target",
]

TOKEN_PREFIX = "python:"
"""Every token starts with this; `python:3: lambda r: r.ok` is not valid expression syntax nor an import path."""

_lock = threading.Lock()
_numbers = itertools.count(1)
_conditions: dict[str, PythonCondition] = {}
_targets: dict[str, Callable[..., Any]] = {}


@dataclass(frozen=True, eq=False)
class PythonCondition:
    """A condition written as a Python callable (library use only).

    Attributes:
        text: how the condition reads in violations and errors (the lambda's source, or the function's name).
        check: evaluates the condition on the names an expression would see (`result` and the inputs, as JSON).
        explain: says why the condition is false on those names, with the values it read.
    """

    text: str
    check: Callable[[Mapping[str, Any]], Any]
    explain: Callable[[Mapping[str, Any]], str]

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """The condition's value on `env` (the same call an Expression answers)."""
        return self.check(env)


Condition: TypeAlias = Expression | PythonCondition


def describe(condition: Condition, env: Mapping[str, Any]) -> str:
    """Explain a false condition with the values it read, for an expression or a Python callable alike."""
    if isinstance(condition, PythonCondition):
        return condition.explain(env)
    return describe_failure(condition, env)


def violation_of(condition: Condition, env: Mapping[str, Any], *, hidden: Collection[Sequence[str]] = ()) -> str | None:
    """None when the condition holds on `env`, else why not (an expression is evaluated once for both).

    Values read from `hidden` (opaque) field paths are named, not shown.
    """
    if isinstance(condition, PythonCondition):
        return None if condition.check(env) else condition.explain(env)
    return condition.violation(env, hidden=hidden)


def _token(kind: str, text: str) -> str:
    label = " ".join(text.split())
    return f"{TOKEN_PREFIX}{kind}{next(_numbers)}: {label[:120]}"


def register_condition(condition: PythonCondition) -> str:
    """Register a Python condition for the life of the process and return the token a plan names it by."""
    with _lock:
        token = _token("c", condition.text)
        _conditions[token] = condition
    return token


def python_condition(text: str) -> PythonCondition | None:
    """The Python condition a token names, or None when `text` is not a token (an ordinary expression)."""
    if not text.startswith(TOKEN_PREFIX):
        return None
    return _conditions.get(text)


def register_target(target: Callable[..., Any], label: str) -> str:
    """Register a compute implementation for the life of the process and return the token `call:` names it by."""
    with _lock:
        token = _token("f", label)
        _targets[token] = target
    return token


def python_target(call: str) -> Callable[..., Any] | None:
    """The compute implementation a token names, or None when `call` is an ordinary import path."""
    if not call.startswith(TOKEN_PREFIX):
        return None
    return _targets.get(call)
