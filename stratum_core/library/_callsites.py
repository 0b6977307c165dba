"""Step ids for the calls a flow's code makes, taken from its source, the same way at run time and at export.

Every call in a flow's body gets an id from where it stands: `sentiment = await classify(text)` is the step
`sentiment`; a call whose result is not bound to a name (`await send(reply)`, a branch of `parallel(...)`) is named
after the function it calls; a second use of an id gets `_2`, `_3`. When a decorated function is called, the
caller's frame says which call site is running (the position of the current instruction, which Python 3.11+ keeps
per instruction), so a recorded step and an exported step get the same id.
"""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

__all__ = ["SiteMap", "awaited_by_caller", "caller_site", "register_sites", "site_map"]

Position = tuple[int, int, int, int]

_maps: dict[CodeType, SiteMap] = {}
_lock = threading.Lock()


@dataclass
class SiteMap:
    """The call sites of one function's body: ids by source position, and the parsed function for the exporter.

    Attributes:
        function: the parsed `async def` (positions in it are relative to `line_offset`).
        file: the source file.
        line_offset: add it to a node's line number to get the line in `file`.
        ids: step id by call node.
        by_position: step id by (line, end line, column, end column) in `file`.
    """

    function: ast.AsyncFunctionDef | ast.FunctionDef
    file: str
    line_offset: int
    ids: dict[int, str] = field(default_factory=dict)
    by_position: dict[Position, str] = field(default_factory=dict)
    positions: list[tuple[int | None, int | None, int | None, int | None]] | None = None

    def id_of(self, node: ast.Call) -> str | None:
        """The step id of a call node of this function."""
        return self.ids.get(id(node))

    def line_of(self, node: ast.AST) -> int:
        """The line in `file` of a node of this function."""
        return getattr(node, "lineno", 1) + self.line_offset


def _callee_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return "step"


class _Namer:
    def __init__(self, sites: SiteMap) -> None:
        self.sites = sites
        self.used: set[str] = set()

    def unique(self, base: str) -> str:
        if base not in self.used:
            self.used.add(base)
            return base
        number = 2
        while f"{base}_{number}" in self.used:
            number += 1
        name = f"{base}_{number}"
        self.used.add(name)
        return name

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            self.expression(node.value, node.targets[0].id)
            return
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            self.expression(node.value, node.target.id)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            return  # nested code has its own frames: its calls are not this flow's call sites
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                self.statement(child)
            elif isinstance(child, ast.expr):
                self.expression(child, None)
            else:
                for grandchild in ast.iter_child_nodes(child):
                    if isinstance(grandchild, ast.stmt):
                        self.statement(grandchild)
                    elif isinstance(grandchild, ast.expr):
                        self.expression(grandchild, None)

    def expression(self, node: ast.expr, bound: str | None) -> None:
        if isinstance(node, ast.Await):
            self.expression(node.value, bound)
            return
        if isinstance(node, ast.Lambda | ast.GeneratorExp | ast.ListComp | ast.SetComp | ast.DictComp):
            return  # their own frames
        if isinstance(node, ast.Call):
            step_id = self.unique(bound or _callee_name(node.func))
            self.sites.ids[id(node)] = step_id
            offset = self.sites.line_offset
            position = (
                node.lineno + offset,
                (node.end_lineno or node.lineno) + offset,
                node.col_offset,
                node.end_col_offset or 0,
            )
            self.sites.by_position[position] = step_id
            for child in [*node.args, *(keyword.value for keyword in node.keywords)]:
                self.expression(child, None)
            return
        for inner in ast.iter_child_nodes(node):
            if isinstance(inner, ast.expr):
                self.expression(inner, None)


def site_map(fn: Callable[..., Any]) -> SiteMap | None:
    """The call sites of `fn`'s body, or None when its source cannot be read or parsed."""
    try:
        lines, first_line = inspect.getsourcelines(fn)
        file = inspect.getsourcefile(fn) or "<unknown>"
    except (OSError, TypeError):
        return None
    source = "".join(lines)
    line_offset = first_line - 1
    if source[:1].isspace():  # a nested or indented definition: parse it inside a block, columns unchanged
        source = "if 1:\n" + source
        line_offset -= 1
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    function = next((n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)), None)
    if function is None:
        return None
    sites = SiteMap(function=function, file=file, line_offset=line_offset)
    namer = _Namer(sites)
    for statement in function.body:
        namer.statement(statement)
    return sites


def register_sites(fn: Callable[..., Any]) -> SiteMap | None:
    """Compute and remember the call sites of a flow's body (looked up by its code object at run time)."""
    sites = site_map(fn)
    code = getattr(fn, "__code__", None)
    if sites is not None and isinstance(code, CodeType):
        with _lock:
            _maps[code] = sites
    return sites


def caller_site(depth: int = 2) -> str | None:
    """The step id of the call being made `depth` frames up, when that frame is a registered flow body."""
    getframe = getattr(sys, "_getframe", None)
    if getframe is None:
        return None
    try:
        frame: FrameType = getframe(depth)
    except ValueError:
        return None
    sites = _maps.get(frame.f_code)
    if sites is None:
        return None
    if sites.positions is None:
        sites.positions = list(frame.f_code.co_positions())
    index = frame.f_lasti // 2
    if index >= len(sites.positions):
        return None
    line, end_line, column, end_column = sites.positions[index]
    if line is None or end_line is None or column is None or end_column is None:
        return None
    return sites.by_position.get((line, end_line, column, end_column))


_GROUPS = frozenset({"parallel", "race"})


@functools.lru_cache(maxsize=256)
def _parents(filename: str, text: str) -> dict[tuple[int, int, int, int], str]:
    """For every call in a source file, by its position: what consumes it ('await', 'group' or 'plain')."""
    try:
        tree = ast.parse(text, filename)
    except SyntaxError:
        return {}
    found: dict[tuple[int, int, int, int], str] = {}
    for node in ast.walk(tree):
        children: list[tuple[ast.AST, str]] = []
        if isinstance(node, ast.Await):
            children = [(node.value, "await")]
        elif isinstance(node, ast.Call):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if callee in _GROUPS:
                children = [(arg, "group") for arg in node.args]
        for child, how in children:
            if isinstance(child, ast.Call) and child.end_lineno is not None and child.end_col_offset is not None:
                found[(child.lineno, child.end_lineno, child.col_offset, child.end_col_offset)] = how
    return found


def awaited_by_caller(frame: FrameType | None) -> bool:
    """Whether the call being made in `frame` is awaited (`await f(x)`) or handed to `parallel`/`race`.

    Read from the caller's source (the call's position in it); without the source, True (a step, as before).
    """
    if frame is None:
        return True
    code = frame.f_code
    try:
        position = list(code.co_positions())[frame.f_lasti // 2]
    except (IndexError, ValueError):
        return True
    if any(part is None for part in position):
        return True
    text = "".join(linecache.getlines(code.co_filename, frame.f_globals))
    if not text:
        return True
    line, end_line, column, end_column = position
    assert line is not None and end_line is not None and column is not None and end_column is not None
    return _parents(code.co_filename, text).get((line, end_line, column, end_column), "plain") != "plain"
