"""What every static check shares: the loaded plan, where its nodes are, and the problems found so far."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from stratum_core.errors import Problem
from stratum_core.plan._loader import LoadedPlan
from stratum_core.plan._model import PRIMITIVE_TYPES, Flow, Function, Step
from stratum_core.plan._plan_schema import did_you_mean
from stratum_core.plan._yaml import Path, format_path

__all__ = ["CheckContext", "FlowScope"]


@dataclass
class FlowScope:
    """One flow as the checks see it: its top-level steps (located) and which step each nested id belongs to."""

    name: str
    flow: Flow
    path: Path
    steps: dict[str, tuple[Path, Step]] = field(default_factory=dict)
    """Top-level steps by id (the first of a duplicated id wins)."""
    nested: dict[str, str] = field(default_factory=dict)
    """Ids of branches inside parallel and race groups -> the id of their group."""
    broken_ids: set[str] = field(default_factory=set)
    """Ids of steps that did not build: references to them are not checked further."""


@dataclass
class CheckContext:
    """The plan under check and the problems found; `report` locates each problem in the text."""

    loaded: LoadedPlan
    problems: set[Problem] = field(default_factory=set)
    runtime_checks: set[Problem] = field(default_factory=set)
    """What the types cannot decide and the engine checks when the plan runs (`stratum validate --strict`)."""
    untrusted: bool = False
    allowed_models: Collection[str] | None = None
    """The models an untrusted plan may name (the server's configured ones); None: not checked here."""

    def __post_init__(self) -> None:
        self.lines = self.loaded.text.splitlines()
        self.plan = self.loaded.plan
        self.data = self.loaded.data
        self.declared_contracts = set(_keys(self.data.get("contracts")))
        self.declared_functions = set(_keys(self.data.get("functions")))
        self.declared_flows = set(_keys(self.data.get("flows")))

    def report(
        self,
        path: Path,
        message: str,
        hint: str | None = None,
        *,
        at: Path | None = None,
        key: bool = False,
        column_offset: int | None = None,
    ) -> None:
        """Record a problem about `path`, located at `at` (default: `path`), its key or value, plus an offset."""
        where = at if at is not None else path
        source_map = self.loaded.source_map
        line, column = source_map.key(where) if key else source_map.value(where)
        if column_offset is not None:
            line, column = self.expression_position(where, column_offset)
        self.problems.add(Problem(self.loaded.source, line, column, format_path(path), message, hint))

    def runtime_check(self, path: Path, message: str, *, column_offset: int | None = None) -> None:
        """Record a run-time check about `path`: not a problem, a warning for `stratum validate --strict`."""
        line, column = self.loaded.source_map.value(path)
        if column_offset is not None:
            line, column = self.expression_position(path, column_offset)
        self.runtime_checks.add(
            Problem(self.loaded.source, line, column, format_path(path), f"checked at run time: {message}")
        )

    def expression_position(self, path: Path, offset: int) -> tuple[int, int]:
        """The position of character `offset` of the one-line scalar at `path` (the scalar's start otherwise)."""
        line, column = self.loaded.source_map.value(path)
        text = self.raw(path)
        if not isinstance(text, str) or not 0 < line <= len(self.lines):
            return line, column
        start = column - 1
        if self.loaded.source_map.styles.get(path) in ("'", '"'):
            start += 1
        if self.lines[line - 1][start : start + len(text)] == text:
            return line, start + 1 + max(0, min(offset, len(text)))
        return line, column

    def raw(self, path: Path) -> Any:
        """The raw value at `path` in the document, or None."""
        value: Any = self.data
        for part in path:
            if isinstance(part, int) and isinstance(value, list) and 0 <= part < len(value):
                value = value[part]
            elif isinstance(part, str) and isinstance(value, dict) and part in value:
                value = value[part]
            else:
                return None
        return value

    def item_paths(self, path: Path) -> Iterator[tuple[Path, Any]]:
        """(path, text) of an expressions key given as one string or a list of them."""
        value = self.raw(path)
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    yield (*path, index), item

    def function(self, name: str | None) -> Function | None:
        return self.plan.functions.get(name) if name else None

    def unknown_name(self, kind: str, name: str, candidates: set[str]) -> tuple[str, str | None]:
        """The message and hint for an unknown name of `kind` (function, flow, contract, step)."""
        return f"unknown {kind} '{name}'", did_you_mean(name, candidates)

    def type_declared(self, name: str) -> bool:
        return name in PRIMITIVE_TYPES or name in self.declared_contracts


def _keys(value: Any) -> list[str]:
    return [key for key in value if isinstance(key, str)] if isinstance(value, dict) else []
