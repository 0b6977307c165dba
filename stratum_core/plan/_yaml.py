"""Safe YAML loading that remembers where every key and value came from.

Plans are read event by event (libyaml's parser when available) and built into plain Python values, so that
nesting depth, alias expansion and document size are bounded, duplicate and non-string keys are refused, and every
node has a 1-based line and column for error messages. Only PlanError ever leaves this module.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import yaml

from stratum_core.errors import PlanError, Problem

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPANDED_CHARS",
    "MAX_NODES",
    "MAX_TEXT_CHARS",
    "Parsed",
    "Path",
    "SourceMap",
    "format_path",
    "parse_yaml",
]

Path: TypeAlias = tuple[str | int, ...]

MAX_TEXT_CHARS = 2_000_000
"""A plan larger than this is refused before parsing."""
MAX_NODES = 250_000
"""Nodes after alias expansion: the bound that defeats 'billion laughs' documents."""
MAX_EXPANDED_CHARS = 8_000_000
"""Characters of scalars (keys and values, each at least 8) after alias expansion: bounds memory, not just nodes."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences a plan may use."""

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


def format_path(path: Path) -> str:
    """`('flows', 'triage', 'steps', 2, 'inputs')` -> `flows.triage.steps[2].inputs`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass
class SourceMap:
    """Where each node of a loaded document sits: `values[path]` and `keys[path]` are (line, column), 1-based."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    styles: dict[Path, str | None] = field(default_factory=dict)

    def value(self, path: Path) -> tuple[int, int]:
        """The position of the value at `path`, or of its nearest located ancestor."""
        return self._find(path, prefer_key=False)

    def key(self, path: Path) -> tuple[int, int]:
        """The position of the key naming `path` (the value's for list items), or of its nearest located ancestor."""
        return self._find(path, prefer_key=True)

    def _find(self, path: Path, *, prefer_key: bool) -> tuple[int, int]:
        probe = path
        while True:
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            found = first.get(probe) or second.get(probe)
            if found is not None:
                return found
            if not probe:
                return (1, 1)
            probe = probe[:-1]


@dataclass
class Parsed:
    """A loaded document: its data, where each node came from, and the problems that did not stop the load."""

    data: Any
    source_map: SourceMap
    problems: list[Problem]


class _Stop(Exception):
    """Loading cannot go on; carries the problem that stopped it."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


@dataclass
class _Anchor:
    value: Any
    root: Path
    log_start: int
    log_end: int = 0
    size: int = 0
    chars: int = 0
    complete: bool = False


def _mark(mark: Any) -> tuple[int, int]:
    if mark is None:
        return (1, 1)
    return (int(mark.line) + 1, int(mark.column) + 1)


class _Builder:
    def __init__(self, text: str, source: str, max_chars: int) -> None:
        self.source = source
        self.max_chars = max_chars
        self.chars = 0
        self.loader = _Loader(text)
        self.map = SourceMap()
        self.problems: list[Problem] = []
        self.anchors: dict[str, _Anchor] = {}
        self.nodes = 0
        self.depth = 0
        self.log: list[tuple[bool, Path, tuple[int, int]]] = []  # (is_key, path, position), in document order

    def place(self, path: Path, position: tuple[int, int], *, is_key: bool = False) -> None:
        table = self.map.keys if is_key else self.map.values
        if path not in table:
            table[path] = position
            self.log.append((is_key, path, position))

    def reroot(self, start: int, end: int, old: Path, new: Path) -> None:
        """Copy the positions logged in [start, end) under `old` to the same places under `new`."""
        for is_key, sub, where in self.log[start:end]:
            if sub[: len(old)] == old:
                self.place(new + sub[len(old) :], where, is_key=is_key)

    def problem(self, position: tuple[int, int], path: Path, message: str, hint: str | None = None) -> Problem:
        return Problem(self.source, position[0], position[1], format_path(path), message, hint)

    def stop(self, position: tuple[int, int], path: Path, message: str, hint: str | None = None) -> _Stop:
        return _Stop(self.problem(position, path, message, hint))

    def count(self, amount: int, position: tuple[int, int], path: Path, *, chars: int = 0) -> None:
        self.nodes += amount
        self.chars += chars
        if self.nodes > MAX_NODES:
            raise self.stop(
                position, path, f"the document is too large (more than {MAX_NODES} values after expanding aliases)"
            )
        if self.chars > self.max_chars:
            raise self.stop(
                position,
                path,
                f"the document is too large (more than {self.max_chars} characters after expanding aliases)",
                "an alias repeats all of its anchor's text",
            )

    def events(self) -> Iterator[Any]:
        while self.loader.check_event():
            yield self.loader.get_event()

    def load(self) -> Any:
        events = self.events()
        next(events)  # StreamStart
        event = next(events)
        if isinstance(event, yaml.StreamEndEvent):
            raise self.stop((1, 1), (), "the plan is empty")
        data = None
        if isinstance(event, yaml.DocumentStartEvent):
            data = self.node(next(events), events, ())
            next(events)  # DocumentEnd
        event = next(events)
        if not isinstance(event, yaml.StreamEndEvent):
            raise self.stop(
                _mark(event.start_mark), (), "a plan file holds one YAML document", "remove the second '---' document"
            )
        if data is None:
            raise self.stop((1, 1), (), "the plan is empty")
        return data

    def node(self, event: Any, events: Iterator[Any], path: Path) -> Any:
        position = _mark(event.start_mark)
        if isinstance(event, yaml.AliasEvent):
            return self.alias(event, position, path)
        self.count(1, position, path)
        anchor_name: str | None = event.anchor
        anchor: _Anchor | None = None
        start, start_chars = self.nodes, self.chars
        if anchor_name is not None:
            anchor = _Anchor(None, path, len(self.log))
            self.anchors[anchor_name] = anchor
        self.place(path, position)
        if isinstance(event, yaml.ScalarEvent):
            value: Any = self.scalar(event, position, path)
        elif isinstance(event, yaml.SequenceStartEvent):
            value = self.sequence(event, events, position, path)
        elif isinstance(event, yaml.MappingStartEvent):
            value = self.mapping(event, events, position, path)
        else:  # pragma: no cover - the parser only produces the events above here
            raise self.stop(position, path, f"unexpected YAML event {type(event).__name__}")
        if anchor is not None:
            anchor.value = value
            anchor.size = self.nodes - start + 1
            anchor.chars = self.chars - start_chars
            anchor.log_end = len(self.log)
            anchor.complete = True
        return value

    def alias(self, event: Any, position: tuple[int, int], path: Path) -> Any:
        anchor = self.anchors.get(event.anchor)
        if anchor is None:
            raise self.stop(position, path, f"unknown alias '*{event.anchor}'")
        if not anchor.complete:
            raise self.stop(position, path, f"alias '*{event.anchor}' refers to a node that contains it")
        self.count(anchor.size, position, path, chars=anchor.chars)
        self.place(path, position)
        # Errors inside an alias point at the anchored text.
        self.reroot(anchor.log_start, anchor.log_end, anchor.root, path)
        return copy.deepcopy(anchor.value)

    def enter(self, position: tuple[int, int], path: Path) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.stop(position, path, f"nesting is too deep (more than {MAX_DEPTH} levels)")

    def scalar(self, event: Any, position: tuple[int, int], path: Path) -> Any:
        self.count(0, position, path, chars=max(len(event.value), _MIN_CHARS))
        self.map.styles[path] = event.style
        tag = event.tag
        if tag == "!":
            tag = _STR
        elif tag is None:
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        if tag in (_STR, _TIMESTAMP):
            return str(event.value)
        if tag == _NULL:
            return None
        constructor = {
            _BOOL: self.loader.construct_yaml_bool,
            _INT: self.loader.construct_yaml_int,
            _FLOAT: self.loader.construct_yaml_float,
        }.get(tag)
        if constructor is not None:
            try:
                return constructor(node)
            except (LookupError, ValueError, TypeError, OverflowError):  # an explicit tag on a value it cannot take
                kind = tag.rsplit(":", 1)[-1]
                raise self.stop(
                    position, path, f"{event.value!r} is not a valid !!{kind} value", "remove the tag or fix the value"
                ) from None
        if tag == _MERGE:
            return _MergeKey()
        raise self.stop(position, path, f"unsupported YAML tag '{tag}'", "plans use plain YAML values only")

    def collection_tag(self, event: Any, position: tuple[int, int], path: Path, expected: str) -> None:
        if event.tag not in (None, "!", expected):
            raise self.stop(position, path, f"unsupported YAML tag '{event.tag}'", "plans use plain YAML values only")

    def sequence(self, event: Any, events: Iterator[Any], position: tuple[int, int], path: Path) -> list[Any]:
        self.collection_tag(event, position, path, _SEQ)
        self.enter(position, path)
        items: list[Any] = []
        for item in events:
            if isinstance(item, yaml.SequenceEndEvent):
                break
            items.append(self.node(item, events, (*path, len(items))))
        self.depth -= 1
        return items

    def mapping(self, event: Any, events: Iterator[Any], position: tuple[int, int], path: Path) -> dict[str, Any]:
        self.collection_tag(event, position, path, _MAP)
        self.enter(position, path)
        result: dict[str, Any] = {}
        merge_log: list[tuple[int, int]] = []
        merged: list[dict[str, Any]] = []
        for key_event in events:
            if isinstance(key_event, yaml.MappingEndEvent):
                break
            key_position = _mark(key_event.start_mark)
            key = self.key(key_event, events, key_position, path)
            value_event = next(events)
            if isinstance(key, _MergeKey):
                start = len(self.log)
                merged.extend(self.merge_sources(value_event, events, key_position, path))
                merge_log.append((start, len(self.log)))
                continue
            if key is None:
                self.node(value_event, events, (*path, "<key>"))  # keep the events in step, drop the value
                continue
            if key in result:
                first_line = self.map.keys.get((*path, key), key_position)[0]
                self.problems.append(
                    self.problem(
                        key_position, (*path, key), f"duplicate key '{key}'", f"first given on line {first_line}"
                    )
                )
                self.node(value_event, events, (*path, "<duplicate>"))
                continue
            self.place((*path, key), key_position, is_key=True)
            result[key] = self.node(value_event, events, (*path, key))
        for source in merged:
            for key, value in source.items():
                result.setdefault(key, value)
        for start, end in merge_log:  # merged keys point at the mapping they came from
            for is_key, sub, where in self.log[start:end]:
                if len(sub) > len(path) + 1 and sub[: len(path) + 1] == (*path, "<<"):
                    rest = sub[len(path) + 1 :]
                    rest = rest[1:] if rest and isinstance(rest[0], int) else rest
                    if rest:
                        self.place((*path, *rest), where, is_key=is_key)
        self.depth -= 1
        return result

    def key(self, event: Any, events: Iterator[Any], position: tuple[int, int], path: Path) -> str | _MergeKey | None:
        if isinstance(event, yaml.ScalarEvent):
            value = self.scalar(event, position, (*path, "<key>"))
            if isinstance(value, str | _MergeKey):
                return value
            shown = "null" if value is None else yaml.safe_dump(value).removesuffix("\n...\n").strip()
            self.problems.append(
                self.problem(position, path, f"keys must be strings, got {shown}", f"write '{event.value}' in quotes")
            )
            return None
        self.node(event, events, (*path, "<key>"))
        self.problems.append(self.problem(position, path, "keys must be strings, got a mapping or a list"))
        return None

    def merge_sources(
        self, event: Any, events: Iterator[Any], position: tuple[int, int], path: Path
    ) -> list[dict[str, Any]]:
        value = self.node(event, events, (*path, "<<"))
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(item, dict) for item in sources):
            raise self.stop(position, path, "a merge key '<<' takes a mapping or a list of mappings")
        return list(sources)


class _MergeKey:
    """The YAML merge key `<<`."""


def parse_yaml(text: str, *, source: str = "<string>", max_expanded_chars: int = MAX_EXPANDED_CHARS) -> Parsed:
    """Parse one YAML document into plain values and their positions.

    `max_expanded_chars` bounds the characters of all scalars once aliases are expanded (an untrusted plan gets a
    smaller bound).

    Raises:
        PlanError: the text is not YAML we accept (syntax, size, depth, aliases, tags, several documents).
    """
    if len(text) > MAX_TEXT_CHARS:
        raise PlanError([Problem(source, 1, 1, "", f"the plan is too large (more than {MAX_TEXT_CHARS} characters)")])
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        line, column = _position(text, surrogate.start())
        raise PlanError(
            [Problem(source, line, column, "", "the plan holds a lone surrogate character, which is not valid text")]
        )
    builder = _Builder(text, source, max_expanded_chars)
    try:
        data = builder.load()
    except _Stop as stop:
        raise PlanError([stop.problem, *builder.problems]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = _mark(mark)
        message = (error.problem or "not valid YAML").strip()
        hint = error.context.strip() if error.context else None
        raise PlanError([Problem(source, line, column, "", f"invalid YAML: {message}", hint)]) from None
    except yaml.YAMLError as error:
        line, column = _reader_position(text, error)
        reason = getattr(error, "reason", None) or str(error).splitlines()[0]
        raise PlanError([Problem(source, line, column, "", f"invalid YAML: {reason}")]) from None
    except (ValueError, OverflowError) as error:  # a constructor refusing a scalar the resolver accepted
        raise PlanError([Problem(source, 1, 1, "", f"invalid YAML: {error}")]) from None
    finally:
        builder.loader.dispose()
    return Parsed(data, builder.map, builder.problems)


_MIN_CHARS = 8  # what a scalar costs at least, however short: a value of a list or dict is not free
_SURROGATE = re.compile("[\ud800-\udfff]")


def _reader_position(text: str, error: yaml.YAMLError) -> tuple[int, int]:
    position = getattr(error, "position", None)
    if not isinstance(position, int):
        return (1, 1)
    return _position(text, position)


def _position(text: str, position: int) -> tuple[int, int]:
    """1-based (line, column) of the character at index `position`."""
    before = text[:position]
    line = before.count("\n") + 1
    return (line, position - (before.rfind("\n") + 1) + 1)
