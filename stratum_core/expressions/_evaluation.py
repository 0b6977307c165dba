"""Evaluation with bounds: a tree-walking interpreter over a checked expression.

Nothing reaches eval, exec or compile. Each evaluation is bounded in steps, wall time, nesting, and the size of the
strings, collections and integers it builds. Values copied or trimmed from the inputs (slices, `strip()`, `split()`,
`sorted(x)`) may be as large as those inputs; their size is charged to the step budget instead.

Sizes count what is reachable, not what is stored: `[[0] * 10000] * 10000` holds 10,000 references to one list, but
reaches 10^8 values, and comparing, hashing, sorting or printing it visits each of them. Every value built is
measured that way (`reach`, memoised per object, so shared parts are measured once and counted each time they are
reachable) and refused past `Limits.max_reach`; every call into C that walks nested values (comparisons, `in`,
hashing, sorting, `min`/`max`, `count`/`index`) is first charged its worst case (`work`), so no single C call runs
longer than the steps left. Evaluations also share the budget of their run and the slice of the event loop they may
use (see `_budget`).
"""

from __future__ import annotations

import ast
import math
import reprlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import GeneratorType
from typing import TYPE_CHECKING, Any, ClassVar, cast

from stratum_core.errors import BudgetExceeded, ExpressionError
from stratum_core.expressions._budget import SliceExhausted, current_budget, current_slice
from stratum_core.expressions._builtins import _FUNCTIONS, _METHODS, _check_replace, _check_split, _join
from stratum_core.expressions._syntax import _BINARY_OPERATORS, _COMPARISONS, _UNARY_OPERATORS, Limits, _string_key
from stratum_core.expressions._values import _ITERABLE_TYPES, _SEQUENCE_TYPES, _a, _input_problem, _listing

if TYPE_CHECKING:
    from stratum_core.expressions._expression import Expression

_ITEMS_PER_STEP = 64  # characters or items copied per step charged
_CLOCK_EVERY = 128  # steps between two looks at the clock
_VALUES_PER_STEP = 16  # values a call into C may visit per step charged (comparing, hashing, sorting)
_CHARS_PER_VALUE = 64  # characters of text that count as one value when sizes are measured
_CONTAINERS = (list, tuple, dict, set)

Scope = dict[str, Any]
Described = str | Callable[[], str]
"""What an operation is, for a refusal: text, or a function making it (only called when refusing)."""

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80


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

    def __init__(self, expression: Expression, env: Mapping[str, Any], limits: Limits, *, record: bool = False) -> None:
        self._expression = expression
        self._env = env
        self.limits = limits
        self._inputs: dict[str, Any] = {}
        self._steps = 0
        self._next_clock = _CLOCK_EVERY
        self._started = time.perf_counter()
        self._deadline = self._started + limits.max_seconds
        self._budget = current_budget()
        self._slice = current_slice()
        self._reach: dict[int, tuple[Any, int]] = {}  # id -> (the value, kept alive; its reach)
        self._top: Scope = {}
        self.recorded: dict[int, Any] | None = {} if record else None
        """Values of the operands of top-level `and` clauses and comparisons, by node id (for explanations)."""

    def run(self, node: ast.expr) -> Any:
        try:
            return self._eval(node, self._top)
        except RecursionError as exc:
            raise self.fail("expression is nested too deeply to evaluate") from exc
        except MemoryError as exc:
            raise self.fail("evaluation ran out of memory") from exc
        finally:
            if self._budget is not None:
                self._budget.seconds += time.perf_counter() - self._started

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(message, expression=self._expression.text)

    def source(self, node: ast.AST) -> str:
        return _segment(self._expression, node)

    # budgets

    def tick(self, cost: int = 1) -> None:
        self._steps += cost
        if self._slice is not None and self._steps > self._slice.max_steps:
            raise SliceExhausted
        if self._steps > self.limits.max_steps:
            raise self.fail(f"evaluation took too many steps (limit {self.limits.max_steps})")
        budget = self._budget
        if budget is not None:
            budget.steps += cost
            if budget.steps > budget.max_steps:
                raise BudgetExceeded(
                    f"the run's expressions took too many steps in total (limit {budget.max_steps})",
                    dimension="expression_steps",
                    limit=budget.max_steps,
                    used=budget.steps,
                )
        if self._steps >= self._next_clock:
            self._next_clock = self._steps + _CLOCK_EVERY
            now = time.perf_counter()
            if self._slice is not None and now > self._slice.deadline:
                raise SliceExhausted
            if now > self._deadline:
                raise self.fail(f"evaluation took too long (limit {self.limits.max_seconds} s)")
            if budget is not None and budget.seconds + (now - self._started) > budget.max_seconds:
                raise BudgetExceeded(
                    f"the run's expressions took too long in total (limit {budget.max_seconds} s)",
                    dimension="expression_seconds",
                    limit=budget.max_seconds,
                    used=budget.seconds + (now - self._started),
                )

    def work(self, values: int, what: Described) -> None:
        """Charge, before making it, a call into C that may visit `values` values; refuse it past the steps left."""
        cost = values // _VALUES_PER_STEP
        if cost <= 0:
            return
        if self._slice is not None and self._steps + cost > self._slice.max_steps:
            raise SliceExhausted
        if self._steps + cost > self.limits.max_steps:
            raise self.fail(
                f"{what() if callable(what) else what} would take too much work: it may visit {values} values "
                f"(limit {self.limits.max_steps * _VALUES_PER_STEP} per evaluation)"
            )
        self.tick(cost)

    def reach(self, value: Any) -> int:
        """How many values `value` reaches, counting a shared part each time it is reachable (text: per 64 chars).

        Memoised per object, so measuring a value built from measured parts costs only its own length.
        """
        kind = type(value)
        if kind is str:
            return 1 + len(value) // _CHARS_PER_VALUE
        if kind not in _CONTAINERS:
            return 1
        memo = self._reach
        known = memo.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        stack = [value]
        while stack:
            item = stack[-1]
            seen = memo.get(id(item))
            if seen is not None and seen[0] is item:  # pushed twice: shared by two parents
                stack.pop()
                continue
            children = [*item.keys(), *item.values()] if type(item) is dict else item
            self.charge(len(children))
            total, pending = 1, []
            for child in children:
                child_kind = type(child)
                if child_kind is str:
                    total += 1 + len(child) // _CHARS_PER_VALUE
                elif child_kind in _CONTAINERS:
                    known = memo.get(id(child))
                    if known is not None and known[0] is child:
                        total += known[1]
                    else:
                        pending.append(child)
                else:
                    total += 1
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            memo[id(item)] = (item, total)
        return memo[id(value)][1]

    def reach_all(self, values: Iterable[Any]) -> int:
        return sum(self.reach(value) for value in values)

    def require_reach(self, reach: int, kind: str) -> None:
        """Refuse, before building it, a value whose expanded size would pass `max_reach`.

        A value may reach as much as twice the inputs read so far: rearranging large inputs is not growth.
        """
        if reach > self.limits.max_reach and reach > 2 * self.reach_all(self._inputs.values()):
            raise self.fail(
                f"{kind} is too large: it would reach {reach} values (limit {self.limits.max_reach}; "
                "a part repeated by reference counts each time)"
            )

    def hashing(self, keys: Iterable[Any], what: Described) -> None:
        """Charge hashing `keys` (a tuple hashes all it holds)."""
        self.work(sum(self.reach(key) for key in keys if type(key) is tuple), what)

    def comparing(self, left: Any, right: Any, what: Described) -> None:
        """Charge comparing two values: at worst both are walked together until the smaller one ends."""
        if type(left) in _CONTAINERS and type(right) in _CONTAINERS:
            self.work(min(self.reach(left), self.reach(right)), what)

    def searching(self, needle: Any, haystack: Any, what: Described) -> None:
        """Charge `needle in haystack` (and list.count/index): each item compared with the needle."""
        kind = type(haystack)
        if kind in (list, tuple):
            if type(needle) in _CONTAINERS:
                self.work(min(self.reach(haystack), len(haystack) * self.reach(needle)), what)
            else:
                self.work(len(haystack), what)
        elif kind in (dict, set):
            self.work(2 * self.reach(needle), what)

    def sorting(self, items: list[Any], what: Described) -> None:
        """Charge sorting `items`: each takes part in about log2(n) comparisons, each bounded by its own size."""
        if len(items) > 1:
            self.work(self.reach_all(items) * 2 * math.ceil(math.log2(len(items)) + 1), what)

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
            if kind is not str:
                self.require_reach(self.reach(value), kind.__name__)
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
        if type(key) is tuple:
            self.hashing((key,), lambda: f"looking up a key in {self.source(owner)}")
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
        items = [self._eval(item, scope) for item in node.elts]
        if isinstance(node, ast.Set):
            self.hashing(items, "building a set")
            return self.produced(set(items))
        self.require_reach(1 + self.reach_all(items), "tuple" if isinstance(node, ast.Tuple) else "list")
        return self.produced(tuple(items) if isinstance(node, ast.Tuple) else items)

    def _dict(self, node: ast.Dict, scope: Scope) -> Any:
        pairs = zip(cast(list[ast.expr], node.keys), node.values, strict=True)
        return self.make_dict([(self._eval(key, scope), self._eval(value, scope)) for key, value in pairs])

    def make_dict(self, pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        """A dict from (key, value) pairs, its keys' hashing charged and its size checked before it is built."""
        self.hashing((key for key, _ in pairs), "building a dict")
        self.require_reach(1 + sum(self.reach(key) + self.reach(value) for key, value in pairs), "dict")
        return cast(dict[Any, Any], self.produced(dict(pairs)))

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
            if type(left) is not str:
                self.require_reach(self.reach(left) + self.reach(right) - 1, type(left).__name__)
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
                if kind != "text":
                    self.require_reach(1 + (self.reach(sequence) - 1) * max(count, 0), kind)

    def _remember(self, node: ast.expr, value: Any, scope: Scope) -> Any:
        if self.recorded is not None and scope is self._top:
            self.recorded[id(node)] = value
        return value

    def _bool_op(self, node: ast.BoolOp, scope: Scope) -> Any:
        stop_when = isinstance(node.op, ast.Or)
        for part in node.values[:-1]:
            value = self._remember(part, self._eval(part, scope), scope)
            if bool(value) is stop_when:
                return value
        return self._remember(node.values[-1], self._eval(node.values[-1], scope), scope)

    def _compare(self, node: ast.Compare, scope: Scope) -> Any:
        if len(node.ops) == 1 and isinstance(node.ops[0], ast.Is | ast.IsNot):
            return self._none_test(node, scope)
        left = self._remember(node.left, self._eval(node.left, scope), scope)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self._remember(right_node, self._eval(right_node, scope), scope)
            if isinstance(op, ast.In | ast.NotIn):
                if type(right) is str:
                    self.charge(len(right))
                else:
                    self.searching(left, right, lambda: f"testing {self.source(node)}")
            elif not isinstance(op, ast.Is | ast.IsNot):
                self.comparing(left, right, lambda: f"comparing {self.source(node)}")
            if not _COMPARISONS[type(op)](left, right):
                return False
            left = right
        return True

    def _none_test(self, node: ast.Compare, scope: Scope) -> bool:
        """`x.tag is None` / `is not None`: a field absent from its record reads as None here (an optional field)."""
        sides = [node.left, node.comparators[0]]
        values: list[Any] = []
        for side in sides:
            key = side.attr if isinstance(side, ast.Attribute) else None
            if isinstance(side, ast.Subscript):
                key = _string_key(side)
            if key is not None:
                owner = self._eval(cast(ast.Attribute | ast.Subscript, side).value, scope)
                if type(owner) is dict:
                    self.tick()
                    values.append(owner.get(key))
                    continue
            values.append(self._eval(side, scope))  # not a record: fails (or reads) as usual
        return bool(_COMPARISONS[type(node.ops[0])](values[0], values[1]))

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
        elif name == "split":
            _check_split(self, receiver, args)
        elif name in ("count", "index") and kind is not str and args:
            self.searching(args[0], receiver, lambda: f"{self.source(owner)}.{name}()")
        elif name == "get" and args:
            self.hashing(args[:1], lambda: f"{self.source(owner)}.get()")
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
            return self.make_dict(self.bounded(pairs, "dict"))
        kind = "set" if isinstance(node, ast.SetComp) else "list"
        items = self.bounded((self._eval(node.elt, inner) for inner in scopes), kind)
        if kind == "set":
            self.hashing(items, "building a set")
            return self.produced(set(items))
        self.require_reach(1 + self.reach_all(items), kind)
        return self.produced(items)

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


def _segment(expr: Expression, node: ast.AST) -> str:
    return ast.get_source_segment(expr._code, node) or expr.text.strip()
