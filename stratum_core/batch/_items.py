"""A batch's items: one JSON object per line of the input file, each keyed by plan hash and input hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stratum_core.plan import Plan
from stratum_core.plan._schema import canonical_json

__all__ = ["BatchItem", "batch_id_of", "item_key", "items_from_lines", "read_items"]


@dataclass(frozen=True)
class BatchItem:
    """One line of a batch's input.

    `line` is the whole JSON object as read (what `--expect` reads); `input` is what the flow is run on: the line's
    fields that the flow takes (a dataset's other columns, an id or the expected answer, stay in `line`).
    `problem` says why a line cannot be run (not JSON, not an object): such an item fails without a run.
    """

    index: int
    key: str
    input: dict[str, Any] = field(default_factory=dict)
    line: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


def item_key(plan: Plan, flow: str, value: Any) -> str:
    """What identifies an item's run across re-runs: the plan's hash, the flow, and the hash of its input."""
    digest = hashlib.sha256(f"{plan.text_hash}\0{flow}\0{canonical_json(value)}".encode()).hexdigest()
    return digest[:24]


def batch_id_of(plan: Plan, flow: str, keys: Iterable[str], *, owner: str | None = None) -> str:
    """A batch's id: the same plan, flow and items (and owner) give the same id, so a re-run continues its batch."""
    digest = hashlib.sha256(f"{plan.text_hash}\0{flow}\0{owner or ''}".encode())
    for key in keys:
        digest.update(key.encode())
    return "b" + digest.hexdigest()[:15]


def items_from_lines(lines: Iterable[Mapping[str, Any] | str], plan: Plan, flow: str) -> Iterator[BatchItem]:
    """Items from JSON objects (or their text); fields the flow does not take are kept out of its input."""
    takes = set(plan.flows[flow].input) if flow in plan.flows else set()
    for index, raw in enumerate(lines):
        if isinstance(raw, str):
            try:
                value: Any = json.loads(raw)
            except ValueError as e:
                yield BatchItem(index, item_key(plan, flow, raw), problem=f"line {index + 1} is not JSON: {e}")
                continue
        else:
            value = dict(raw)
        if not isinstance(value, dict):
            problem = f"line {index + 1} is not a JSON object (got {type(value).__name__})"
            yield BatchItem(index, item_key(plan, flow, value), problem=problem)
            continue
        inputs = {k: v for k, v in value.items() if k in takes}
        yield BatchItem(index, item_key(plan, flow, inputs), input=inputs, line=value)


def read_items(path: str | Path, plan: Plan, flow: str) -> list[BatchItem]:
    """The items of a JSONL file (blank lines are skipped; each other line is one item, numbered from 0)."""
    with Path(path).open(encoding="utf-8") as file:
        lines = [line for line in (raw.strip() for raw in file) if line]
    return list(items_from_lines(lines, plan, flow))
