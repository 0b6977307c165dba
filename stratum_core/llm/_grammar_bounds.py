"""Numeric bounds a grammar enforces: a schema rewritten for servers whose schema-to-grammar converter drops them.

llama.cpp compiles the `json_schema` field to a grammar that enforces enums, string lengths, patterns and integer
ranges, but not the range of a `number`: a 135M model under the grammar answers `"confidence": 1000000000000`
against `maximum: 1` (docs/benchmarks.md, `python -m bench constrained`). Sent to such a server, a `number` with
both ends bounded becomes the `enum` of its values on a decimal grid fine enough for at least `GRID_VALUES` of them
(0, 0.01, ..., 1 for 0..1; 1, 1.1, ..., 10 for 1..10): an enum is what the grammar does enforce. Every value of
the grid meets the original schema; what the engine validates the answer against is the original, unchanged. A
range too wide for a grid of at most `MAX_VALUES` (or with an open end) is sent as it is, and the engine's
validation and retry catch a value out of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["GRID_VALUES", "MAX_VALUES", "with_enforced_bounds"]

GRID_VALUES = 100
"""A grid is as coarse as it may be while it still has this many steps across the range."""
MAX_VALUES = 1001
"""The most values one bounded number may become (a larger enum makes a slow grammar)."""
_MAX_DEPTH = 64
_NUMBER_KEYWORDS = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def with_enforced_bounds(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` with every bounded `number` replaced by the enum of its grid values (a copy; nested schemas too)."""
    rewritten = _rewrite(schema, 0)
    assert isinstance(rewritten, dict)
    return rewritten


def _rewrite(node: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return node
    if isinstance(node, list):
        return [_rewrite(item, depth + 1) for item in node]
    if not isinstance(node, Mapping):
        return node
    grid = _grid(node)
    if grid is not None:
        kept = {key: value for key, value in node.items() if key not in _NUMBER_KEYWORDS}
        return {**kept, "enum": grid}
    return {
        key: _rewrite(value, depth + 1) if key != "enum" and key != "const" else value for key, value in node.items()
    }


def _grid(node: Mapping[str, Any]) -> list[int | float] | None:
    """The values of a bounded `number` on the coarsest decimal grid with GRID_VALUES steps; None if not one."""
    if node.get("type") != "number" or "enum" in node or "const" in node:
        return None
    low, low_open = _end(node, "minimum", "exclusiveMinimum", max)
    high, high_open = _end(node, "maximum", "exclusiveMaximum", min)
    if low is None or high is None or not high > low:
        return None
    decimals = max(0, math.ceil(-math.log10((high - low) / GRID_VALUES)))
    step = 10.0**-decimals
    first, last = math.ceil(round(low / step, 9)), math.floor(round(high / step, 9))
    if last - first + 1 > MAX_VALUES:
        return None
    values = [round(i * step, decimals) for i in range(first, last + 1)]
    values = [v for v in values if (v > low if low_open else v >= low) and (v < high if high_open else v <= high)]
    if not values:
        return None
    return [int(v) if decimals == 0 else v for v in values]


def _end(node: Mapping[str, Any], inclusive: str, exclusive: str, tighter: Any) -> tuple[float | None, bool]:
    """One end of the range and whether it is open (the tighter of the inclusive and exclusive keyword)."""
    closed, opened = _finite(node.get(inclusive)), _finite(node.get(exclusive))
    if closed is None and opened is None:
        return None, False
    if closed is None:
        return opened, True
    if opened is None:
        return closed, False
    bound = tighter(closed, opened)
    return bound, bound == opened and opened != closed


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
