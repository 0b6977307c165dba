"""The values expressions compute with: JSON-like inputs, and the types the evaluator builds from them."""

from __future__ import annotations

import difflib
import itertools
from types import GeneratorType
from typing import Any

_MAX_INPUT_DEPTH = 100  # nesting of the JSON-like values an expression may read

_SCALAR_TYPES = frozenset({type(None), bool, int, float, str})
_INPUT_CONTAINERS = frozenset({dict, list, tuple})
_SEQUENCE_TYPES = frozenset({list, tuple, dict, set})
_ITERABLE_TYPES = frozenset({str, list, tuple, dict, set, range, GeneratorType})


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


def _a(value: Any) -> str:
    """How a message names a value's type: 'None', 'an int', 'a str'."""
    name = type(value).__name__
    return "None" if value is None else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _listing(names: list[str], wanted: object) -> str:
    """Up to 20 of `names`, then a guess at the one meant by `wanted` if one is close."""
    listing = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none"
    close = difflib.get_close_matches(wanted, names, n=1) if isinstance(wanted, str) else []
    return f"{listing}; did you mean {close[0]!r}?" if close else listing
