"""The sandbox for plan expressions: `given`, `ensure`, `until`, `feedback`, `when`, `dispatch`, `validate`, `expr`.

Plan expressions are untrusted text in Python expression syntax. They are parsed with `ast`, checked against a
whitelist of node types, functions and methods, and run by a tree-walking interpreter: nothing reaches eval, exec or
compile. Each evaluation is bounded in steps, wall time, nesting, and the size of the strings, collections and
integers it builds. Values copied or trimmed from the inputs (slices, `strip()`, `split()`, `sorted(x)`) may be as
large as those inputs; their size is charged to the step budget instead.
"""

from __future__ import annotations

import ast
import difflib
import functools
import io
import itertools
import operator
import reprlib
import time
import tokenize
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import GeneratorType
from typing import Any, ClassVar, cast

from stratum_core.errors import ExpressionError

_MAX_TEXT = 10_000  # characters of expression text
_ITEMS_PER_STEP = 64  # characters or items copied per step charged
_CLOCK_EVERY = 128  # steps between two looks at the clock
_MAX_INPUT_DEPTH = 100  # nesting of the JSON-like values an expression may read

Scope = dict[str, Any]


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


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class FieldRead:
    """A read of a record field chain rooted at a free name: `result.label.lower()` reads `result` field `label`."""

    root: str
    fields: tuple[str, ...]
    offset: int

    def __str__(self) -> str:
        return self.root + "".join(f".{f}" if f.isidentifier() else f"[{f!r}]" for f in self.fields)


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


# --- compile time -------------------------------------------------------------------------------------------------


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


# --- evaluation ---------------------------------------------------------------------------------------------------

_SCALAR_TYPES = frozenset({type(None), bool, int, float, str})
_INPUT_CONTAINERS = frozenset({dict, list, tuple})
_SEQUENCE_TYPES = frozenset({list, tuple, dict, set})
_ITERABLE_TYPES = frozenset({str, list, tuple, dict, set, range, GeneratorType})
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80


def _input_problem(value: Any) -> str | None:
    """Why `value` is not a JSON-like tree the evaluator may read, or None when it is one."""
    done: set[int] = set()
    open_: set[int] = set()

    def visit(item: Any, depth: int) -> str | None:
        kind = type(item)
        if kind in _SCALAR_TYPES:
            return None
        if kind not in _INPUT_CONTAINERS:
            return f"holds a {kind.__name__}; expressions read only dict, list, tuple, str, int, float, bool and None"
        if id(item) in done:
            return None
        if id(item) in open_:
            return "contains itself"
        if depth >= _MAX_INPUT_DEPTH:
            return f"is nested more than {_MAX_INPUT_DEPTH} levels deep"
        open_.add(id(item))
        children = itertools.chain(item.keys(), item.values()) if kind is dict else item
        for child in children:
            if (problem := visit(child, depth + 1)) is not None:
                return problem
        open_.discard(id(item))
        done.add(id(item))
        return None

    return visit(value, 0)


def _python_failure(exc: Exception, source: str) -> str:
    """A message for a Python error raised by an allowed operation on bad values."""
    if isinstance(exc, ZeroDivisionError):
        return f"division by zero in {source}"
    kinds: list[tuple[type[Exception], str]] = [
        (OverflowError, "number too large"),
        (IndexError, "index out of range"),
        (KeyError, "missing key"),
        (TypeError, "type error"),
    ]
    kind = next((word for cls, word in kinds if isinstance(exc, cls)), "invalid value")
    return f"{kind} in {source}: {exc}"


class _Evaluator:
    """One evaluation of one expression: holds the step count and the clock, so it is never shared or reused."""

    def __init__(self, expression: Expression, env: Mapping[str, Any], limits: Limits) -> None:
        self._expression = expression
        self._env = env
        self.limits = limits
        self._inputs: dict[str, Any] = {}
        self._steps = 0
        self._next_clock = _CLOCK_EVERY
        self._deadline = time.perf_counter() + limits.max_seconds

    def run(self, node: ast.expr) -> Any:
        try:
            return self._eval(node, {})
        except RecursionError as exc:
            raise self.fail("expression is nested too deeply to evaluate") from exc
        except MemoryError as exc:
            raise self.fail("evaluation ran out of memory") from exc

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(message, expression=self._expression.text)

    def source(self, node: ast.AST) -> str:
        return _segment(self._expression, node)

    # budgets

    def tick(self, cost: int = 1) -> None:
        self._steps += cost
        if self._steps > self.limits.max_steps:
            raise self.fail(f"evaluation took too many steps (limit {self.limits.max_steps})")
        if self._steps >= self._next_clock:
            self._next_clock = self._steps + _CLOCK_EVERY
            if time.perf_counter() > self._deadline:
                raise self.fail(f"evaluation took too long (limit {self.limits.max_seconds} s)")

    def charge(self, size: int) -> None:
        """Count copying `size` characters or items against the step budget."""
        if size >= _ITEMS_PER_STEP:
            self.tick(size // _ITEMS_PER_STEP)

    def require_length(self, length: int, kind: str) -> None:
        """Refuse, before building it, a value of `kind` ('text' or a collection) longer than its limit."""
        limit, unit = (self.limits.max_string, "characters") if kind == "text" else (self.limits.max_sequence, "items")
        if length > limit:
            raise self.fail(f"{kind} is too long: {length} {unit} (limit {limit})")

    def require_bits(self, bits: int, *, estimate: bool = False) -> None:
        if bits > self.limits.max_int_bits:
            size = f"at least {bits}" if estimate else str(bits)
            raise self.fail(f"integer is too large: {size} bits (limit {self.limits.max_int_bits})")

    def produced(self, value: Any) -> Any:
        """Check a value the expression built against the size limits, and charge for its size."""
        kind = type(value)
        if kind is str or kind in _SEQUENCE_TYPES:
            self.require_length(len(value), "text" if kind is str else kind.__name__)
            self.charge(len(value))
        elif kind is int:
            self.require_bits(value.bit_length())
        elif kind is complex:
            raise self.fail("the result is a complex number, which expressions do not support")
        return value

    # iteration

    def iterable(self, value: Any) -> Any:
        if type(value) not in _ITERABLE_TYPES:
            raise self.fail(f"cannot iterate over {_a(value)}")
        return value

    def iterate(self, value: Any) -> Iterator[Any]:
        for item in self.iterable(value):
            self.tick()
            yield item

    def bounded(self, items: Iterable[Any], kind: str = "list") -> list[Any]:
        """Materialise `items`, refusing as soon as there are more than max_sequence of them."""
        result: list[Any] = []
        for item in items:
            result.append(item)
            if len(result) > self.limits.max_sequence:
                raise self.fail(f"{kind} is too long: over the limit of {self.limits.max_sequence} items")
        return result

    def collect(self, value: Any) -> list[Any]:
        """The items of a generator (bounded) or a copy of a container's items (charged)."""
        if isinstance(value, GeneratorType):
            return self.bounded(value)
        self.charge(len(self.iterable(value)))
        return list(value)

    # nodes

    def _eval(self, node: ast.expr, scope: Scope) -> Any:
        self.tick()
        try:
            return self._HANDLERS[type(node)](self, node, scope)
        except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
            raise self.fail(_python_failure(exc, self.source(node))) from exc

    def _constant(self, node: ast.Constant, scope: Scope) -> Any:
        return node.value

    def _name(self, node: ast.Name, scope: Scope) -> Any:
        if node.id in scope:
            return scope[node.id]
        if node.id in self._inputs:
            return self._inputs[node.id]
        if node.id not in self._env:
            raise self.fail(f"unknown name '{node.id}' (available: {_listing(sorted(map(str, self._env)), node.id)})")
        value = self._env[node.id]
        if (problem := _input_problem(value)) is not None:
            raise self.fail(f"input '{node.id}' {problem}")
        self._inputs[node.id] = value
        return value

    def _attribute(self, node: ast.Attribute, scope: Scope) -> Any:
        value = self._eval(node.value, scope)
        if type(value) is dict:
            return self.field(value, node.attr, node.value)
        owner = self.source(node.value)
        message = f"{owner} is {_a(value)}, not a record, so it has no field '{node.attr}'"
        if node.attr in _METHODS.get(type(value), ()):
            message += f" (to use the method, call it: {owner}.{node.attr}())"
        raise self.fail(message)

    def field(self, record: dict[Any, Any], key: Any, owner: ast.expr) -> Any:
        try:
            return record[key]
        except KeyError:
            pass
        word = "field" if isinstance(key, str) else "key"
        listing = _listing([name for name in record if isinstance(name, str)], key)
        raise self.fail(f"{self.source(owner)} has no {word} {key!r} ({word}s: {listing})")

    def _subscript(self, node: ast.Subscript, scope: Scope) -> Any:
        value = self._eval(node.value, scope)
        if isinstance(node.slice, ast.Slice):
            parts = (node.slice.lower, node.slice.upper, node.slice.step)
            bounds = [None if part is None else self._eval(part, scope) for part in parts]
            if any(bound is not None and type(bound) not in (int, bool) for bound in bounds):
                raise self.fail(f"slice bounds must be integers or None in {self.source(node)}")
            if type(value) not in (str, list, tuple, range):
                raise self.fail(f"cannot slice {_a(value)} in {self.source(node)}")
            result = value[slice(*bounds)]
            self.charge(len(result))
            return result
        key = self._eval(node.slice, scope)
        if type(value) is dict:
            return self.field(value, key, node.value)
        if type(value) not in (str, list, tuple, range):
            raise self.fail(f"cannot index {_a(value)} in {self.source(node)}")
        if type(key) not in (int, bool):
            raise self.fail(f"{type(value).__name__} indices must be integers, not {type(key).__name__}")
        if not -len(value) <= key < len(value):
            raise self.fail(f"index {key} is out of range for {self.source(node.value)} ({len(value)} items)")
        return value[key]

    def _literal(self, node: ast.List | ast.Tuple | ast.Set, scope: Scope) -> Any:
        build = {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)]
        return self.produced(build(self._eval(item, scope) for item in node.elts))

    def _dict(self, node: ast.Dict, scope: Scope) -> Any:
        pairs = zip(cast(list[ast.expr], node.keys), node.values, strict=True)
        return self.produced({self._eval(key, scope): self._eval(value, scope) for key, value in pairs})

    def _unary(self, node: ast.UnaryOp, scope: Scope) -> Any:
        return self.produced(_UNARY_OPERATORS[type(node.op)](self._eval(node.operand, scope)))

    def _binary(self, node: ast.BinOp, scope: Scope) -> Any:
        left = self._eval(node.left, scope)
        return self.arithmetic(type(node.op), left, self._eval(node.right, scope))

    def arithmetic(self, op: type[ast.operator], left: Any, right: Any) -> Any:
        """Apply a binary operator, refusing first any result that would break a size limit."""
        sequences = (str, list, tuple)
        if op is ast.Add and type(left) in sequences and type(left) is type(right):
            self.require_length(len(left) + len(right), "text" if type(left) is str else type(left).__name__)
        elif op is ast.Mult:
            self._check_product(left, right)
        elif op is ast.Pow and type(left) in (int, bool) and type(right) in (int, bool) and right > 0 and abs(left) > 1:
            self.require_bits((abs(left).bit_length() - 1) * right + 1, estimate=True)
        elif op is ast.Mod and type(left) is str:
            raise self.fail("text formatting with % is not available (build text with + and str(...))")
        return self.produced(_BINARY_OPERATORS[op](left, right))

    def _check_product(self, left: Any, right: Any) -> None:
        integers = (int, bool)
        if type(left) in integers and type(right) in integers:
            self.require_bits(left.bit_length() + right.bit_length() - 1, estimate=True)
            return
        for sequence, count in ((left, right), (right, left)):
            if type(sequence) in (str, list, tuple) and type(count) in integers:
                kind = "text" if type(sequence) is str else type(sequence).__name__
                self.require_length(len(sequence) * max(count, 0), kind)

    def _bool_op(self, node: ast.BoolOp, scope: Scope) -> Any:
        stop_when = isinstance(node.op, ast.Or)
        for part in node.values[:-1]:
            value = self._eval(part, scope)
            if bool(value) is stop_when:
                return value
        return self._eval(node.values[-1], scope)

    def _compare(self, node: ast.Compare, scope: Scope) -> Any:
        left = self._eval(node.left, scope)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self._eval(right_node, scope)
            if isinstance(op, ast.In | ast.NotIn) and type(right) in _ITERABLE_TYPES:
                self.charge(len(right))
            if not _COMPARISONS[type(op)](left, right):
                return False
            left = right
        return True

    def _if(self, node: ast.IfExp, scope: Scope) -> Any:
        return self._eval(node.body if self._eval(node.test, scope) else node.orelse, scope)

    def _call(self, node: ast.Call, scope: Scope) -> Any:
        if isinstance(node.func, ast.Attribute):
            receiver = self._eval(node.func.value, scope)
            return self._method(receiver, node.func.attr, self._arguments(node, scope), node.func.value)
        name = cast(ast.Name, node.func).id
        args = self._arguments(node, scope)
        keywords = {cast(str, keyword.arg): self._eval(keyword.value, scope) for keyword in node.keywords}
        return _FUNCTIONS[name].implementation(self, args, keywords)

    def _arguments(self, node: ast.Call, scope: Scope) -> list[Any]:
        return [
            self._generator(arg, scope) if isinstance(arg, ast.GeneratorExp) else self._eval(arg, scope)
            for arg in node.args
        ]

    def _method(self, receiver: Any, name: str, args: list[Any], owner: ast.expr) -> Any:
        kind = type(receiver)
        if name not in _METHODS.get(kind, ()):
            available = ", ".join(sorted(_METHODS.get(kind, ()))) or "none"
            raise self.fail(
                f"{self.source(owner)} is {_a(receiver)}, which has no method '{name}' (methods: {available})"
            )
        if kind in (str, list, tuple):
            self.charge(len(receiver))
        if name == "join":
            return _join(self, receiver, args)
        if name == "replace":
            _check_replace(self, receiver, args)
        result = getattr(receiver, name)(*args)
        if name in ("keys", "values", "items"):
            result = list(result)
        if type(result) in (str, list):
            self.charge(len(result))
        return result

    def _scopes(self, generators: list[ast.comprehension], scope: Scope) -> Iterator[Scope]:
        """Every binding of the comprehension variables that passes the `if` clauses, in order."""
        first, rest = generators[0], generators[1:]
        for item in self.iterate(self._eval(first.iter, scope)):
            inner = dict(scope)
            self._bind(first.target, item, inner)
            if all(self._eval(test, inner) for test in first.ifs):
                if rest:
                    yield from self._scopes(rest, inner)
                else:
                    yield inner

    def _bind(self, target: ast.expr, value: Any, scope: Scope) -> None:
        if isinstance(target, ast.Name):
            scope[target.id] = value
            return
        names = cast(ast.Tuple | ast.List, target).elts
        if type(value) not in (str, list, tuple) or len(value) != len(names):
            size = f"{len(value)} values" if type(value) in (str, list, tuple) else _a(value)
            raise self.fail(f"cannot unpack {size} into {len(names)} names in {self.source(target)}")
        for name, item in zip(names, value, strict=True):
            self._bind(name, item, scope)

    def _generator(self, node: ast.GeneratorExp, scope: Scope) -> Iterator[Any]:
        return (self._eval(node.elt, inner) for inner in self._scopes(node.generators, scope))

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp, scope: Scope) -> Any:
        scopes = self._scopes(node.generators, scope)
        if isinstance(node, ast.DictComp):
            pairs = ((self._eval(node.key, inner), self._eval(node.value, inner)) for inner in scopes)
            return self.produced(dict(self.bounded(pairs, "dict")))
        kind = "set" if isinstance(node, ast.SetComp) else "list"
        items = self.bounded((self._eval(node.elt, inner) for inner in scopes), kind)
        return self.produced(set(items) if kind == "set" else items)

    _HANDLERS: ClassVar[dict[type[ast.AST], Callable[[_Evaluator, Any, Scope], Any]]] = {
        ast.Constant: _constant,
        ast.Name: _name,
        ast.Attribute: _attribute,
        ast.Subscript: _subscript,
        ast.List: _literal,
        ast.Tuple: _literal,
        ast.Set: _literal,
        ast.Dict: _dict,
        ast.UnaryOp: _unary,
        ast.BinOp: _binary,
        ast.BoolOp: _bool_op,
        ast.Compare: _compare,
        ast.IfExp: _if,
        ast.Call: _call,
        ast.ListComp: _comprehension,
        ast.SetComp: _comprehension,
        ast.DictComp: _comprehension,
    }


def _a(value: Any) -> str:
    """How a message names a value's type: 'None', 'an int', 'a str'."""
    name = type(value).__name__
    return "None" if value is None else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _listing(names: list[str], wanted: object) -> str:
    """Up to 20 of `names`, then a guess at the one meant by `wanted` if one is close."""
    listing = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none"
    close = difflib.get_close_matches(wanted, names, n=1) if isinstance(wanted, str) else []
    return f"{listing}; did you mean {close[0]!r}?" if close else listing


def _segment(expr: Expression, node: ast.AST) -> str:
    return ast.get_source_segment(expr._code, node) or expr.text.strip()


# --- functions and methods ----------------------------------------------------------------------------------------

Implementation = Callable[[_Evaluator, list[Any], dict[str, Any]], Any]


@dataclass(frozen=True)
class _Function:
    """A function expressions may call: how it may be called (checked at compile time), and what it does."""

    implementation: Implementation
    min_args: int
    max_args: int | None
    keywords: frozenset[str] = frozenset()
    takes_iterables: bool = False  # may be given a generator expression

    def check_call(self, checker: _Checker, node: ast.Call) -> None:
        name = cast(ast.Name, node.func).id
        count = len(node.args)
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise checker.error(node, "unpacking with * is not allowed")
        if count < self.min_args or (self.max_args is not None and count > self.max_args):
            most = "any number of" if self.max_args is None else str(self.max_args)
            expected = str(self.min_args) if self.min_args == self.max_args else f"{self.min_args} to {most}"
            raise checker.error(node, f"{name}() takes {expected} arguments ({count} given)")
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg not in self.keywords:
                allowed = ", ".join(sorted(self.keywords)) or "none"
                shown = f"'{keyword.arg}'" if keyword.arg else "**"
                raise checker.error(keyword.value, f"{name}() does not take keyword {shown}", f"keywords: {allowed}")


def _optional(args: list[Any], keywords: dict[str, Any], index: int, name: str, default: Any) -> Any:
    """An argument that may be given by position or by keyword, like round()'s ndigits."""
    if len(args) > index:
        if name in keywords:
            raise TypeError(f"got two values for '{name}'")
        return args[index]
    return keywords.get(name, default)


def _extreme(pick: Callable[..., Any]) -> Implementation:
    def implementation(ev: _Evaluator, args: list[Any], keywords: dict[str, Any]) -> Any:
        items = ev.collect(args[0]) if len(args) == 1 else args
        if "default" in keywords:
            if len(args) != 1:
                raise TypeError("default= needs a single iterable argument")
            return pick(items, default=keywords["default"])
        return pick(items)

    return implementation


def _sum(ev: _Evaluator, args: list[Any], keywords: dict[str, Any]) -> Any:
    total = _optional(args, keywords, 1, "start", 0)
    if type(total) is str:
        raise TypeError("sum() cannot add text: use ''.join(...)")
    for item in ev.iterate(args[0]):
        total = ev.arithmetic(ast.Add, total, item)
    return total


def _round(ev: _Evaluator, args: list[Any], keywords: dict[str, Any]) -> Any:
    digits = _optional(args, keywords, 1, "ndigits", None)
    if digits is not None:
        if type(digits) not in (int, bool):
            raise TypeError(f"round() digits must be an integer, not {type(digits).__name__}")
        bound = ev.limits.max_int_bits // 4  # round(1, -n) computes 10**n
        if abs(digits) > bound:
            raise ev.fail(f"round() digits must be between -{bound} and {bound}")
    return round(args[0], digits)


def _sorted(ev: _Evaluator, args: list[Any], keywords: dict[str, Any]) -> Any:
    items = ev.collect(args[0])
    ev.charge(len(items))
    return sorted(items, reverse=keywords.get("reverse", False))


def _str(ev: _Evaluator, args: list[Any], keywords: dict[str, Any]) -> Any:
    if not args or type(args[0]) is str:
        return args[0] if args else ""
    ev.require_length(_repr_length(ev, args[0]), "text")
    return str(args[0])


def _repr_length(ev: _Evaluator, value: Any) -> int:
    """An upper bound on len(str(value)), found without building it; stops once past max_string."""
    total, stack = 0, [value]
    while stack and total <= ev.limits.max_string:
        item = stack.pop()
        kind = type(item)
        ev.tick()
        if kind is int:
            ev.require_bits(item.bit_length())
            total += item.bit_length() * 30103 // 100_000 + 2  # log10(2) digits per bit, a sign and a spare
        elif kind is str:
            total += len(repr(item)) if len(item) <= ev.limits.max_string else len(item)
        elif kind in _SEQUENCE_TYPES:
            total += 6 + 4 * len(item)
            stack.extend(itertools.chain(item.keys(), item.values()) if kind is dict else item)
        else:  # None, bool, float, range
            total += len(repr(item))
    return total


def _number(convert: Callable[[Any], Any]) -> Implementation:
    """int() or float(): of a number or text, with the text's length bounded (parsing long digits is slow)."""

    def implementation(ev: _Evaluator, args: list[Any], keywords: dict[str, Any]) -> Any:
        if not args:
            return convert(0)
        value = args[0]
        if type(value) not in (int, float, bool, str):
            raise TypeError(f"{convert.__name__}() takes a number or text, not {type(value).__name__}")
        limit = ev.limits.max_int_bits // 3 + 64
        if type(value) is str and len(value) > limit:
            message = f"text is too long to convert with {convert.__name__}(): {len(value)} characters"
            raise ev.fail(f"{message} (limit {limit})")
        return ev.produced(convert(value))

    return implementation


def _dict(ev: _Evaluator, args: list[Any], keywords: dict[str, Any]) -> Any:
    if not args:
        return {}
    if type(args[0]) is dict:
        ev.charge(len(args[0]))
        return dict(args[0])
    result: dict[Any, Any] = {}
    for pair in ev.collect(args[0]):
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise TypeError("dict() takes (key, value) pairs")
        result[pair[0]] = pair[1]
    return result


def _range(ev: _Evaluator, args: list[Any], keywords: dict[str, Any]) -> Any:
    if any(type(arg) not in (int, bool) for arg in args):
        raise TypeError("range() takes integers")
    numbers = range(*args)
    try:
        length = len(numbers)
    except OverflowError:  # longer than sys.maxsize
        length = (numbers.stop - numbers.start) // numbers.step
    ev.require_length(length, "range")
    return numbers


def _enumerate(ev: _Evaluator, args: list[Any], keywords: dict[str, Any]) -> Any:
    start = _optional(args, keywords, 1, "start", 0)
    if type(start) not in (int, bool):
        raise TypeError("enumerate() start must be an integer")
    return list(enumerate(ev.collect(args[0]), start))


def _join(ev: _Evaluator, separator: str, args: list[Any]) -> str:
    if len(args) != 1:
        raise TypeError(f"join() takes exactly one argument ({len(args)} given)")
    parts = ev.collect(args[0])
    length = sum(len(part) for part in parts if type(part) is str) + len(separator) * max(len(parts) - 1, 0)
    ev.require_length(length, "text")
    return cast(str, ev.produced(separator.join(parts)))


def _check_replace(ev: _Evaluator, text: str, args: list[Any]) -> None:
    """Refuse a replace() whose result would grow past max_string, before building it."""
    if len(args) < 2 or type(args[0]) is not str or type(args[1]) is not str:
        return
    count = text.count(args[0])
    if len(args) > 2 and type(args[2]) is int and args[2] >= 0:
        count = min(count, args[2])
    length = len(text) + count * (len(args[1]) - len(args[0]))
    if length > max(len(text), ev.limits.max_string):
        ev.require_length(length, "text")


_FUNCTIONS: dict[str, _Function] = {
    "abs": _Function(lambda ev, args, kw: abs(args[0]), 1, 1),
    "all": _Function(lambda ev, args, kw: all(ev.iterate(args[0])), 1, 1, takes_iterables=True),
    "any": _Function(lambda ev, args, kw: any(ev.iterate(args[0])), 1, 1, takes_iterables=True),
    "bool": _Function(lambda ev, args, kw: bool(*args), 0, 1),
    "dict": _Function(_dict, 0, 1, takes_iterables=True),
    "enumerate": _Function(_enumerate, 1, 2, frozenset({"start"}), takes_iterables=True),
    "float": _Function(_number(float), 0, 1),
    "int": _Function(_number(int), 0, 1),
    "len": _Function(lambda ev, args, kw: len(args[0]), 1, 1),
    "list": _Function(lambda ev, args, kw: ev.collect(args[0]) if args else [], 0, 1, takes_iterables=True),
    "max": _Function(_extreme(max), 1, None, frozenset({"default"}), takes_iterables=True),
    "min": _Function(_extreme(min), 1, None, frozenset({"default"}), takes_iterables=True),
    "range": _Function(_range, 1, 3),
    "reversed": _Function(lambda ev, args, kw: ev.collect(args[0])[::-1], 1, 1),
    "round": _Function(_round, 1, 2, frozenset({"ndigits"})),
    "set": _Function(lambda ev, args, kw: set(ev.collect(args[0]) if args else ()), 0, 1, takes_iterables=True),
    "sorted": _Function(_sorted, 1, 1, frozenset({"reverse"}), takes_iterables=True),
    "str": _Function(_str, 0, 1),
    "sum": _Function(_sum, 1, 2, frozenset({"start"}), takes_iterables=True),
    "tuple": _Function(lambda ev, args, kw: tuple(ev.collect(args[0]) if args else ()), 0, 1, takes_iterables=True),
    "zip": _Function(
        lambda ev, args, kw: list(zip(*map(ev.collect, args), strict=False)), 0, None, takes_iterables=True
    ),
}
_STRING_METHODS = """lower upper strip lstrip rstrip startswith endswith split join replace count find title capitalize
    isdigit isalpha isalnum isspace islower isupper""".split()
_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(_STRING_METHODS),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
    dict: frozenset({"get", "keys", "values", "items"}),
}
_ALL_METHODS = frozenset().union(*_METHODS.values())
_METHODS_HINT = "allowed methods: " + "; ".join(
    f"{kind.__name__}: {', '.join(sorted(names))}" for kind, names in _METHODS.items()
)


# --- failure descriptions -----------------------------------------------------------------------------------------


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
