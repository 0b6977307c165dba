"""A compiled expression: parsed and checked once, evaluated any number of times, explained when it is false."""

from __future__ import annotations

import ast
import math
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
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
from stratum_core.expressions._values import _a


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

    def evaluate_json(self, env: Mapping[str, Any], *, limits: Limits = DEFAULT_LIMITS) -> Any:
        """The expression's value as a JSON value (what a compute `expr` returns): tuples become lists.

        Raises:
            ExpressionError: the evaluation failed, or the value is not JSON (a set, a range, a dict with keys that
                are not text, a number that is not finite).
        """
        evaluator = _Evaluator(self, env, limits)
        return _as_json(evaluator, evaluator.run(self._tree.body))

    def violation(
        self, env: Mapping[str, Any], *, limits: Limits = DEFAULT_LIMITS, hidden: Collection[Sequence[str]] = ()
    ) -> str | None:
        """None when the condition holds on `env`; else why not, with the values it read (see `describe_failure`).

        One evaluation: the explanation shows the values computed on the way, never evaluates anything again. A
        value that reads a `hidden` field path (opaque data: `("ticket", "note")`, `"*"` for any list item) is
        named, never shown. Raises ExpressionError when the condition cannot be evaluated.
        """
        evaluator = _Evaluator(self, env, limits, record=True)
        if evaluator.run(self._tree.body):
            return None
        return _explain(self, env, evaluator.recorded or {}, hidden)

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
    key = (text, limits)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    compiled = _compile(text, limits)
    global _cached_chars
    with _cache_lock:
        if key not in _cache:
            _cache[key] = compiled
            _cached_chars += len(text)
        while _cached_chars > CACHE_MAX_CHARS or len(_cache) > CACHE_MAX_ENTRIES:
            (old, _), _ = _cache.popitem(last=False)
            _cached_chars -= len(old)
    return compiled


CACHE_MAX_CHARS = 500_000
"""Characters of expression text the compiled-expression cache holds (a compiled tree takes ~100 bytes a char)."""
CACHE_MAX_ENTRIES = 4_096
_cache: OrderedDict[tuple[str, Limits], Expression] = OrderedDict()
_cache_lock = threading.Lock()
_cached_chars = 0


def cached_expression_chars() -> int:
    """Characters of expression text the compiled-expression cache holds now."""
    return _cached_chars


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

    For an `and` chain only the first false clause is shown: that is the one to fix. The condition is evaluated
    once, its operands' values recorded on the way (`Expression.violation` does this without a first evaluation).
    """
    evaluator = _Evaluator(expr, env, DEFAULT_LIMITS, record=True)
    try:
        evaluator.run(expr._tree.body)
    except ExpressionError as exc:
        clause = expr._tree.body
        if isinstance(clause, ast.BoolOp) and isinstance(
            clause.op, ast.And
        ):  # the clause that raised: the first not done
            recorded = evaluator.recorded or {}
            clause = next((part for part in clause.values if id(part) not in recorded), clause)
        text = expr.text.strip() if clause is expr._tree.body else _segment(expr, clause)
        return f"{text} (error: {exc.message})"
    return _explain(expr, env, evaluator.recorded or {})


def _explain(
    expr: Expression, env: Mapping[str, Any], recorded: Mapping[int, Any], hidden: Collection[Sequence[str]] = ()
) -> str:
    clause = expr._tree.body
    if isinstance(clause, ast.BoolOp) and isinstance(clause.op, ast.And):
        for part in clause.values:
            if id(part) in recorded and not recorded[id(part)]:
                clause = part
                break
    text = expr.text.strip() if clause is expr._tree.body else _segment(expr, clause)
    shown = _actual_values(expr, clause, env, recorded, hidden)
    actual = ", ".join(f"{name} = {value if value is _HIDDEN else _SHORT.repr(value)}" for name, value in shown)
    return f"{text} (actual: {actual})" if actual else text


class _Hidden:
    def __str__(self) -> str:
        return "<opaque, not shown>"


_HIDDEN: Any = _Hidden()


def _overlaps(read: FieldRead, hidden: Collection[Sequence[str]]) -> bool:
    """True when `read` reads a hidden path, or something that holds one ("*" stands for any list item)."""
    path = (read.root, *read.fields)
    for secret in hidden:
        common = min(len(path), len(secret))
        if all(secret[i] in ("*", path[i]) for i in range(common)):
            return True
    return False


def _reads_within(expr: Expression, node: ast.expr) -> list[FieldRead]:
    positions = _Positions(expr._code, expr._lead)
    start, end = positions.of(node), positions.index(node.end_lineno or 1, node.end_col_offset or 0)
    return [read for read in expr.reads if start <= read.offset < end]


def _actual_values(
    expr: Expression,
    clause: ast.expr,
    env: Mapping[str, Any],
    recorded: Mapping[int, Any],
    hidden: Collection[Sequence[str]] = (),
) -> list[tuple[str, Any]]:
    """The values worth showing for a false clause: a comparison's operands (those computed), else its fields."""
    shown: dict[str, Any] = {}
    if isinstance(clause, ast.Compare):
        for operand in (clause.left, *clause.comparators):
            if id(operand) not in recorded or not any(isinstance(part, ast.Name) for part in ast.walk(operand)):
                continue
            secret = hidden and any(_overlaps(read, hidden) for read in _reads_within(expr, operand))
            shown.setdefault(_segment(expr, operand), _HIDDEN if secret else recorded[id(operand)])
        if shown:
            return list(shown.items())
    for read in _reads_within(expr, clause):
        if (value := _read_field(env, read)) is not _MISSING:
            shown.setdefault(str(read), _HIDDEN if hidden and _overlaps(read, hidden) else value)
    return list(shown.items())


_MISSING = object()


def _read_field(env: Mapping[str, Any], read: FieldRead) -> Any:
    value = env.get(read.root, _MISSING)
    for name in read.fields:
        if type(value) is not dict or name not in value:
            return _MISSING
        value = value[name]
    return value


def _as_json(evaluator: _Evaluator, value: Any) -> Any:
    """`value` as JSON (tuples as lists), or an ExpressionError naming what is not JSON and where."""
    converted: dict[int, tuple[Any, Any]] = {}  # id -> (the value, its JSON form): a shared part converts once

    def convert(item: Any, where: str) -> Any:
        kind = type(item)
        if item is None or kind in (str, bool, int):
            return item
        if kind is float:
            if not math.isfinite(item):
                raise evaluator.fail(f"the result is not a JSON value: {where} is {item!r}")
            return item
        known = converted.get(id(item))
        if known is not None and known[0] is item:
            return known[1]
        evaluator.charge(len(item) if kind in (list, tuple, dict) else 0)
        if kind in (list, tuple):
            result: Any = [convert(part, f"{where}[{index}]") for index, part in enumerate(item)]
        elif kind is dict:
            for key in item:
                if type(key) is not str:
                    raise evaluator.fail(
                        f"the result is not a JSON value: {where} has the key {_SHORT.repr(key)}, and JSON keys are "
                        "text (use str(...) for the keys)"
                    )
            result = {key: convert(part, f"{where}[{key!r}]") for key, part in item.items()}
        else:
            hint = {"set": "use sorted(...) for a list", "range": "use list(...)"}.get(kind.__name__)
            raise evaluator.fail(
                f"the result is not a JSON value: {where} is {_a(item)}" + (f" ({hint})" if hint else "")
            )
        converted[id(item)] = (item, result)
        return result

    return convert(value, "the result")
