"""The built-in functions and methods expressions may call.

Each has a signature (checked at compile time) and a bounded implementation.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from stratum_core.expressions._values import _SEQUENCE_TYPES

if TYPE_CHECKING:
    from stratum_core.expressions._evaluation import _Evaluator
    from stratum_core.expressions._syntax import _Checker

Implementation = Callable[["_Evaluator", list[Any], dict[str, Any]], Any]


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
        ev.work(ev.reach_all(items), f"{pick.__name__}()")
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
    ev.sorting(items, "sorted()")
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
    pairs: list[tuple[Any, Any]] = []
    for pair in ev.collect(args[0]):
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise TypeError("dict() takes (key, value) pairs")
        pairs.append((pair[0], pair[1]))
    return ev.make_dict(pairs)


def _set(ev: _Evaluator, args: list[Any], keywords: dict[str, Any]) -> Any:
    items = ev.collect(args[0]) if args else []
    ev.hashing(items, "set()")
    return set(items)


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


def _check_split(ev: _Evaluator, text: str, args: list[Any]) -> None:
    """Refuse a split() into more than max_sequence parts, before building them."""
    separator = args[0] if args else None
    limit = args[1] if len(args) > 1 and type(args[1]) is int and args[1] >= 0 else None
    if type(separator) is str and separator:
        parts = text.count(separator) + 1
    else:  # on whitespace: at most one part per two characters
        parts = (len(text) + 1) // 2
        if parts > ev.limits.max_sequence and limit is None:
            parts = len(text.split())
    if limit is not None:
        parts = min(parts, limit + 1)
    ev.require_length(parts, "list")


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
    "set": _Function(_set, 0, 1, takes_iterables=True),
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
