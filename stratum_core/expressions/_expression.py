"""A compiled expression: parsed and checked once, evaluated any number of times, explained when it is false."""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping
from typing import Any

from stratum_core.errors import ExpressionError
from stratum_core.expressions._evaluation import _SHORT, _Evaluator, _segment
from stratum_core.expressions._syntax import (
    _MAX_TEXT,
    DEFAULT_LIMITS,
    ExpressionSyntaxError,
    FieldRead,
    Limits,
    _check_nesting,
    _Checker,
    _parse,
    _Positions,
)


class Expression:
    """A compiled expression: checked once, then evaluated any number of times, from any thread."""

    __slots__ = ("_code", "_lead", "_tree", "names", "reads", "text")

    def __init__(
        self, text: str, tree: ast.Expression, *, lead: int, names: frozenset[str], reads: tuple[FieldRead, ...]
    ) -> None:
        self.text = text
        self.names = names
        self.reads = reads
        self._tree = tree
        self._lead = lead
        self._code = text[lead:]

    def evaluate(self, env: Mapping[str, Any], *, limits: Limits = DEFAULT_LIMITS) -> Any:
        """The expression's value with its free names bound by `env`; raises ExpressionError on any failure."""
        return _Evaluator(self, env, limits).run(self._tree.body)

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def compile_expression(text: str, *, limits: Limits = DEFAULT_LIMITS) -> Expression:
    """Parse and check `text`; raises ExpressionSyntaxError for anything the sandbox will not run.

    Compiled expressions are immutable and safe to share, so they are cached: a plan's conditions are compiled once.
    """
    if not isinstance(text, str):
        raise ExpressionSyntaxError(
            f"an expression must be text, not {type(text).__name__}", expression=str(text), offset=0
        )
    return _compile_cached(text, limits)


@functools.lru_cache(maxsize=4096)
def _compile_cached(text: str, limits: Limits) -> Expression:
    return _compile(text, limits)


def _compile(text: str, limits: Limits) -> Expression:
    if not isinstance(text, str):
        raise ExpressionSyntaxError(
            f"an expression must be text, not {type(text).__name__}", expression=str(text), offset=0
        )
    if len(text) > _MAX_TEXT:
        raise ExpressionSyntaxError(
            f"expression is too long: {len(text)} characters (limit {_MAX_TEXT})", expression=text, offset=_MAX_TEXT
        )
    code = text.lstrip(" \t\f")
    lead = len(text) - len(code)
    if not code.strip():
        raise ExpressionSyntaxError("expression is empty", expression=text, offset=0)
    positions = _Positions(code, lead)
    tree = _parse(text, code, positions)
    _check_nesting(text, code, positions, tree, limits.max_depth)
    checker = _Checker(text, positions, limits)
    checker.check(tree.body, frozenset())
    reads = tuple(sorted(checker.reads, key=lambda read: read.offset))
    return Expression(text, tree, lead=lead, names=frozenset(checker.names), reads=reads)


def describe_failure(expr: Expression, env: Mapping[str, Any]) -> str:
    """Explain a falsy condition with the values it read, e.g. `x.a > 1 (actual: x.a = 0)`.

    For an `and` chain only the first false clause is shown: that is the one to fix.
    """
    clause = expr._tree.body
    if isinstance(clause, ast.BoolOp) and isinstance(clause.op, ast.And):
        for part in clause.values:
            try:
                holds = _Evaluator(expr, env, DEFAULT_LIMITS).run(part)
            except ExpressionError as exc:
                return f"{_segment(expr, part)} (error: {exc.message})"
            if not holds:
                clause = part
                break
    text = expr.text.strip() if clause is expr._tree.body else _segment(expr, clause)
    actual = ", ".join(f"{name} = {_SHORT.repr(value)}" for name, value in _actual_values(expr, clause, env))
    return f"{text} (actual: {actual})" if actual else text


def _actual_values(expr: Expression, clause: ast.expr, env: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The values worth showing for a false clause: a comparison's operands, or else the fields it reads."""
    shown: dict[str, Any] = {}
    if isinstance(clause, ast.Compare):
        for operand in (clause.left, *clause.comparators):
            if not any(isinstance(part, ast.Name) for part in ast.walk(operand)):
                continue
            try:
                shown.setdefault(_segment(expr, operand), _Evaluator(expr, env, DEFAULT_LIMITS).run(operand))
            except ExpressionError:
                continue
        if shown:
            return list(shown.items())
    positions = _Positions(expr._code, expr._lead)
    start, end = positions.of(clause), positions.index(clause.end_lineno or 1, clause.end_col_offset or 0)
    for read in expr.reads:
        if start <= read.offset < end and (value := _read_field(env, read)) is not _MISSING:
            shown.setdefault(str(read), value)
    return list(shown.items())


_MISSING = object()


def _read_field(env: Mapping[str, Any], read: FieldRead) -> Any:
    value = env.get(read.root, _MISSING)
    for name in read.fields:
        if type(value) is not dict or name not in value:
            return _MISSING
        value = value[name]
    return value
