"""The allow-list and the parser: what an expression may contain, checked once when it is compiled.

Plan expressions are untrusted text in Python expression syntax. They are parsed with `ast` and checked against an
allow-list of node types, operators, functions and methods; the checker also collects the free names and field reads.
"""

from __future__ import annotations

import ast
import io
import itertools
import operator
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stratum_core.expressions._builtins import _ALL_METHODS, _FUNCTIONS, _METHODS_HINT

_MAX_TEXT = 10_000  # characters of expression text


class ExpressionSyntaxError(ValueError):
    """An expression was refused when compiled: bad syntax, or something outside the sandbox.

    Attributes:
        message: what is wrong.
        expression: the text as given.
        offset: 0-based character index into the text where the problem is (best effort).
        hint: how to fix it, if there is something to say.
    """

    def __init__(self, message: str, *, expression: str, offset: int, hint: str | None = None) -> None:
        super().__init__(f"{message} ({hint})" if hint else message)
        self.message = message
        self.expression = expression
        self.offset = offset
        self.hint = hint


@dataclass(frozen=True)
class Limits:
    """Bounds on one evaluation; `max_depth` also bounds the expression's nesting when it is compiled."""

    max_steps: int = 100_000
    max_seconds: float = 0.05
    max_string: int = 100_000
    max_sequence: int = 10_000
    max_int_bits: int = 4_096
    max_depth: int = 64
    max_reach: int = 1_000_000
    """Values reachable from one value the expression builds, a part shared by reference counted each time."""


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class FieldRead:
    """A read of a record field chain rooted at a free name: `result.label.lower()` reads `result` field `label`."""

    root: str
    fields: tuple[str, ...]
    offset: int

    def __str__(self) -> str:
        return self.root + "".join(f".{f}" if f.isidentifier() else f"[{f!r}]" for f in self.fields)


class _Positions:
    """Turns parser positions in `code` (1-based line, UTF-8 byte column) into 0-based indexes into the text.

    `code` is the text without its `lead` leading blanks, which the parser would refuse.
    """

    def __init__(self, code: str, lead: int) -> None:
        self._lines = code.split("\n")
        self._ascii = [line.isascii() for line in self._lines]
        self._starts = list(itertools.accumulate((len(line) + 1 for line in self._lines[:-1]), initial=lead))
        self._end = lead + len(code)

    def index(self, lineno: int, column: int, *, in_bytes: bool = True) -> int:
        row = min(max(lineno, 1), len(self._lines)) - 1
        if in_bytes and not self._ascii[row]:
            column = len(self._lines[row].encode()[:column].decode(errors="ignore"))
        return min(self._starts[row] + max(column, 0), self._end)

    def of(self, node: ast.AST) -> int:
        return self.index(getattr(node, "lineno", 1), getattr(node, "col_offset", 0))


def _parse(text: str, code: str, positions: _Positions) -> ast.Expression:
    try:
        return ast.parse(code, mode="eval")
    except SyntaxError as exc:
        offset = positions.index(exc.lineno or 1, (exc.offset or 1) - 1, in_bytes=False)
        message = f"invalid syntax: {exc.msg}" if exc.msg != "invalid syntax" else "invalid syntax"
        raise ExpressionSyntaxError(message, expression=text, offset=offset, hint=_syntax_hint(code)) from exc
    except (RecursionError, MemoryError) as exc:
        raise ExpressionSyntaxError(
            "expression is nested too deeply to parse", expression=text, offset=0, hint="split it into simpler ones"
        ) from exc
    except ValueError as exc:  # e.g. text that cannot be encoded
        raise ExpressionSyntaxError(f"expression cannot be parsed: {exc}", expression=text, offset=0) from exc


def _syntax_hint(code: str) -> str | None:
    try:
        ast.parse(code, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return "a plan expression is a single Python expression, not a statement"


def _check_nesting(text: str, code: str, positions: _Positions, tree: ast.Expression, limit: int) -> None:
    """Refuse expressions nested deeper than `limit`, in brackets (even redundant ones) or in the syntax tree."""
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
                if depth > limit:
                    offset = positions.index(*token.start, in_bytes=False)
                    raise _too_deep(text, offset, limit)
            elif token.type == tokenize.OP and token.string in ")]}":
                depth -= 1
    except (tokenize.TokenError, SyntaxError):  # the parser accepted it; the tree walk below still bounds it
        pass
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise _too_deep(text, positions.of(node), limit)
        stack.extend((child, depth + isinstance(child, ast.expr)) for child in ast.iter_child_nodes(node))


def _too_deep(text: str, offset: int, limit: int) -> ExpressionSyntaxError:
    return ExpressionSyntaxError(
        f"expression is nested too deeply (more than {limit} levels)",
        expression=text,
        offset=offset,
        hint="split it into simpler expressions",
    )


_BINARY_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY_OPERATORS: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda left, right: left in right,
    ast.NotIn: lambda left, right: left not in right,
}
_SYMBOLS: dict[type[ast.AST], str] = {
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.MatMult: "@",
    ast.Invert: "~",
}
_OPERATOR_HINT = "allowed operators: + - * / // % ** and, or, not, comparisons, in, is None"
_REFUSED_NODES: dict[type[ast.AST], tuple[str, str | None]] = {
    ast.Lambda: ("lambda functions are not allowed", "an expression cannot define functions"),
    ast.NamedExpr: ("assignment expressions (:=) are not allowed", "an expression cannot assign names"),
    ast.JoinedStr: ("f-strings are not allowed", "build text with + and str(...)"),
    ast.FormattedValue: ("f-strings are not allowed", "build text with + and str(...)"),
    ast.Await: ("'await' is not allowed", None),
    ast.Yield: ("'yield' is not allowed", None),
    ast.YieldFrom: ("'yield from' is not allowed", None),
    ast.Starred: ("unpacking with * is not allowed", None),
    ast.Slice: ("a slice is only allowed directly inside [...]", None),
    ast.GeneratorExp: (
        "a generator expression can only be passed to a function",
        "e.g. any(x > 0 for x in items), or use a list comprehension [...]",
    ),
}
_SINGLETONS = (None, True, False)


def _string_key(node: ast.Subscript) -> str | None:
    """The key of `x['key']`, which reads a record field like `x.key` does."""
    index = node.slice
    return index.value if isinstance(index, ast.Constant) and type(index.value) is str else None


class _Checker:
    """One walk over a parsed expression: refuses what the sandbox will not run, collects names and field reads."""

    def __init__(self, text: str, positions: _Positions, limits: Limits) -> None:
        self._text = text
        self._positions = positions
        self._limits = limits
        self.names: set[str] = set()
        self.reads: list[FieldRead] = []

    def error(self, node: ast.AST, message: str, hint: str | None = None) -> ExpressionSyntaxError:
        return ExpressionSyntaxError(message, expression=self._text, offset=self._positions.of(node), hint=hint)

    def check(self, node: ast.expr, bound: frozenset[str]) -> None:
        match node:
            case ast.Name() | ast.Attribute() | ast.Subscript():
                self._chain(node, bound)
            case ast.Constant():
                self._constant(node, node.value)
            case ast.List(elts=items) | ast.Tuple(elts=items) | ast.Set(elts=items):
                for item in items:
                    self.check(item, bound)
            case ast.Dict(keys=keys, values=entries):
                for key, entry in zip(keys, entries, strict=True):
                    if key is None:
                        raise self.error(entry, "dict unpacking (**) is not allowed")
                    self.check(key, bound)
                    self.check(entry, bound)
            case ast.UnaryOp(op=op, operand=operand):
                if type(op) not in _UNARY_OPERATORS:
                    raise self.error(node, f"operator '{_SYMBOLS[type(op)]}' is not allowed", _OPERATOR_HINT)
                self.check(operand, bound)
            case ast.BinOp(left=left, op=op, right=right):
                if type(op) not in _BINARY_OPERATORS:
                    raise self.error(node, f"operator '{_SYMBOLS[type(op)]}' is not allowed", _OPERATOR_HINT)
                self.check(left, bound)
                self.check(right, bound)
            case ast.BoolOp(values=parts):
                for part in parts:
                    self.check(part, bound)
            case ast.Compare():
                self._compare(node, bound)
            case ast.IfExp(test=test, body=body, orelse=orelse):
                for part in (test, body, orelse):
                    self.check(part, bound)
            case ast.Call():
                self._call(node, bound)
            case ast.ListComp() | ast.SetComp() | ast.DictComp():
                self._comprehension(node, bound)
            case _:
                message, hint = _REFUSED_NODES.get(type(node), (f"{type(node).__name__} is not allowed", None))
                raise self.error(node, message, hint)

    def _constant(self, node: ast.Constant, value: object) -> None:
        if value is not None and type(value) not in (bool, int, float, str):
            raise self.error(node, f"{type(value).__name__} literals are not allowed")
        if type(value) is int and value.bit_length() > self._limits.max_int_bits:
            raise self.error(node, f"integer literal is too large (limit {self._limits.max_int_bits} bits)")

    def _chain(self, node: ast.expr, bound: frozenset[str]) -> None:
        """Check `root.a['b'].c`, recording it as one field read when its root is a free name."""
        fields: list[str] = []
        current = node
        while True:
            if isinstance(current, ast.Attribute):
                self._attribute_name(current, current.attr)
                fields.append(current.attr)
                current = current.value
            elif isinstance(current, ast.Subscript) and (key := _string_key(current)) is not None:
                fields.append(key)
                current = current.value
            else:
                break
        if isinstance(current, ast.Name):
            self._name(current, bound, tuple(reversed(fields)))
        elif isinstance(current, ast.Subscript):  # a computed index ends the chain
            if isinstance(current.slice, ast.Slice):
                for part in (current.slice.lower, current.slice.upper, current.slice.step):
                    if part is not None:
                        self.check(part, bound)
            else:
                self.check(current.slice, bound)
            self._chain(current.value, bound)
        else:
            self.check(current, bound)

    def _name(self, node: ast.Name, bound: frozenset[str], fields: tuple[str, ...]) -> None:
        if node.id.startswith("_") and not (node.id == "_" and node.id in bound):
            raise self.error(node, f"name '{node.id}' is not allowed", "names starting with '_' are private")
        if node.id not in bound:
            self.names.add(node.id)
            self.reads.append(FieldRead(node.id, fields, self._positions.of(node)))

    def _attribute_name(self, node: ast.AST, name: str) -> None:
        if name.startswith("_"):
            raise self.error(node, f"attribute '{name}' is not allowed", "names starting with '_' are private")

    def _compare(self, node: ast.Compare, bound: frozenset[str]) -> None:
        operands = [node.left, *node.comparators]
        for index, op in enumerate(node.ops):
            left, right = operands[index], operands[index + 1]
            if isinstance(op, ast.Is | ast.IsNot) and not any(
                isinstance(side, ast.Constant) and any(side.value is singleton for singleton in _SINGLETONS)
                for side in (left, right)
            ):
                raise self.error(right, "'is' only compares with None, True or False", "use == to compare values")
        for operand in operands:
            self.check(operand, bound)

    def _call(self, node: ast.Call, bound: frozenset[str]) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            spec = _FUNCTIONS.get(func.id)
            if spec is None:
                raise self.error(func, f"unknown function '{func.id}'", f"allowed functions: {', '.join(_FUNCTIONS)}")
            spec.check_call(self, node)
            takes_generators = spec.takes_iterables
        elif isinstance(func, ast.Attribute):
            self._attribute_name(func, func.attr)
            if func.attr not in _ALL_METHODS:
                raise self.error(func, f"method '{func.attr}' is not available", _METHODS_HINT)
            if node.keywords:
                raise self.error(node.keywords[0].value, f"method '{func.attr}' takes positional arguments only")
            self.check(func.value, bound)
            takes_generators = func.attr == "join"
        else:
            raise self.error(func, "only named functions and methods can be called")
        for arg in node.args:
            if isinstance(arg, ast.GeneratorExp) and takes_generators:
                self._comprehension(arg, bound)
            else:
                self.check(arg, bound)
        for keyword in node.keywords:
            self.check(keyword.value, bound)

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp, bound: frozenset[str]
    ) -> None:
        inner = bound
        for generator in node.generators:
            if generator.is_async:
                raise self.error(generator.iter, "'async for' is not allowed")
            self.check(generator.iter, inner)
            inner = inner | self._targets(generator.target)
            for test in generator.ifs:
                self.check(test, inner)
        if isinstance(node, ast.DictComp):
            self.check(node.key, inner)
            self.check(node.value, inner)
        else:
            self.check(node.elt, inner)

    def _targets(self, target: ast.expr) -> frozenset[str]:
        if isinstance(target, ast.Name):
            if target.id.startswith("_") and target.id != "_":
                raise self.error(target, f"name '{target.id}' is not allowed", "names starting with '_' are private")
            return frozenset({target.id})
        if isinstance(target, ast.Tuple | ast.List):
            return frozenset().union(*(self._targets(item) for item in target.elts))
        raise self.error(target, "a comprehension can only bind names, e.g. `for k, v in d.items()`")
