"""Labelled examples for `stratum optimize`: read, checked against the function's input, split, hashed.

One JSON object a line: `{"input": {...}, "label": {...}}` (`output` is accepted for `label`). The label holds the
output fields to match (all of them, or only those that matter); a function with a non-object output takes the
value itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratum_core.engine._validation import schema_violations
from stratum_core.errors import ConfigurationError
from stratum_core.plan import Contract, InferFunction
from stratum_core.plan._schema import fields_schema

__all__ = ["Example", "Examples", "load_examples", "split_examples"]

MAX_EXAMPLES = 100_000
MAX_BYTES = 50_000_000


@dataclass(frozen=True)
class Example:
    """One labelled example; `line` is where it is in the data file (1-based)."""

    input: Mapping[str, Any]
    label: Any
    line: int


@dataclass(frozen=True)
class Examples:
    """The examples of a data file and the sha256 of its bytes (recorded in the artifact)."""

    items: tuple[Example, ...]
    data_hash: str
    source: str


def load_examples(path: str | os.PathLike[str], fn: InferFunction, contracts: Mapping[str, Contract]) -> Examples:
    """Read a JSON-lines data file; ConfigurationError names the line and what is wrong (all problems, up to 20)."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_BYTES:
            raise ConfigurationError(f"{file}: the data file is larger than {MAX_BYTES:,} bytes")
        raw = file.read_bytes()
    except OSError as e:
        raise ConfigurationError(f"{file}: cannot read the data file: {e.strerror or e}") from e
    input_schema = fields_schema(fn.input, contracts)
    problems: list[str] = []
    items: list[Example] = []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{file}:{number}"
        try:
            record = json.loads(line)
        except ValueError as e:
            problems.append(f"{where}: not JSON ({e})")
            continue
        if not isinstance(record, dict) or "input" not in record or not ({"label", "output"} & set(record)):
            problems.append(f'{where}: expected an object with "input" and "label" (or "output")')
            continue
        unknown = sorted(set(record) - {"input", "label", "output"})
        if unknown:
            problems.append(f"{where}: unknown key {unknown[0]!r} (an example has input and label)")
            continue
        violations = schema_violations(record["input"], input_schema, root="input")
        problems.extend(f"{where}: {violation.removeprefix('schema: ')}" for violation in violations)
        items.append(Example(record["input"], record.get("label", record.get("output")), number))
        if len(items) > MAX_EXAMPLES:
            problems.append(f"{where}: more than {MAX_EXAMPLES:,} examples")
            break
    if problems:
        shown = problems[:20]
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ConfigurationError("the data file has problems:\n" + "\n".join(shown) + more)
    if len(items) < 2:
        raise ConfigurationError(f"{file}: need at least 2 examples (one to learn from, one to test on)")
    return Examples(tuple(items), hashlib.sha256(raw).hexdigest(), str(file))


def split_examples(items: Sequence[Example], *, train_split: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded shuffle cut into (train, held-out test); each side keeps at least one example."""
    if not 0 < train_split < 1:
        raise ConfigurationError(f"--train-split must be between 0 and 1, not {train_split}")
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    cut = min(len(shuffled) - 1, max(1, round(len(shuffled) * train_split)))
    return shuffled[:cut], shuffled[cut:]
