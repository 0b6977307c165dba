"""Resolving a compute function's `call:` target (`package.module:function`) to the callable it names.

The module is looked up beside the plan file first, then in the plan's `python_path` folders, then on sys.path.
Importing runs the module's top-level code, which the plan's owner wrote; nothing else of it runs here. The checker
uses this to report a target that cannot be called, and the engine to call it, so both follow exactly one rule.
`find_call_target` checks the same rule without importing anything (the module's file is found and its source
read): what `stratum validate` does by default.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CallTargetError", "find_call_target", "resolve_call_target"]

_lock = threading.Lock()


class CallTargetError(Exception):
    """A `call:` target cannot be called: `message` says why, `hint` what to do (if anything)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def resolve_call_target(target: str, *, search_path: Sequence[Path] = ()) -> Callable[..., Any]:
    """The public callable `target` names; raises CallTargetError saying why it cannot be had.

    `search_path` (the plan's folder and its `python_path` folders, absolute) is searched before sys.path.
    """
    return _resolve(target, tuple(str(folder) for folder in search_path))


@functools.lru_cache(maxsize=256)
def _resolve(target: str, search_path: tuple[str, ...]) -> Callable[..., Any]:
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise CallTargetError(f"'{target}' is not of the form 'package.module:function'")
    with _lock:
        saved = list(sys.path)
        sys.path[:0] = search_path
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            missing = error.name or module_name
            raise CallTargetError(
                f"cannot import '{module_name}': no module named '{missing}'",
                "modules are looked up beside the plan file, then in its `python_path` folders, then on sys.path"
                if len(search_path) > 1
                else "modules are looked up beside the plan file, then on sys.path",
            ) from error
        except (Exception, SystemExit) as error:  # the plan owner's module failed at import: isolate it
            raise CallTargetError(f"importing '{module_name}' failed: {type(error).__name__}: {error}") from error
        finally:
            sys.path[:] = saved
    value: object = module
    walked = module_name
    for part in attribute.split("."):
        if part.startswith("_"):
            raise CallTargetError(f"'{target}' names a private attribute", "call targets must be public names")
        if not hasattr(value, part):
            public = [name for name in dir(value) if not name.startswith("_")]
            close = difflib.get_close_matches(part, sorted(set(public)), n=1, cutoff=0.6)
            raise CallTargetError(
                f"'{walked}' has no attribute '{part}'", f"did you mean '{close[0]}'?" if close else None
            )
        value = getattr(value, part)
        walked = f"{walked}:{part}" if walked == module_name else f"{walked}.{part}"
    if not callable(value):
        raise CallTargetError(f"'{target}' is not callable")
    return value


def find_call_target(target: str, *, search_path: Sequence[Path] = ()) -> None:
    """Check `target` without running any of its code: find the module's file and the name in its source.

    Raises CallTargetError as `resolve_call_target` would. What only importing could tell (a name made at import
    time, a module without source) is given the benefit of the doubt.
    """
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise CallTargetError(f"'{target}' is not of the form 'package.module:function'")
    parts = attribute.split(".")
    if any(part.startswith("_") for part in parts):
        raise CallTargetError(f"'{target}' names a private attribute", "call targets must be public names")
    spec = _find_spec(module_name, search_path)
    origin = spec.origin if spec is not None else None
    if spec is None:
        raise CallTargetError(
            f"cannot find the module '{module_name}'",
            "modules are looked up beside the plan file, then in its `python_path` folders, then on sys.path",
        )
    if not origin or not origin.endswith(".py"):
        return  # built in, compiled or a namespace package: only importing would tell
    try:
        tree = ast.parse(Path(origin).read_bytes(), filename=origin)
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise CallTargetError(f"cannot read the module '{module_name}' ({origin}): {error}") from None
    names = _top_level_names(tree.body)
    if names is None:
        return  # `from x import *` or a module __getattr__: names are made at import time
    first = parts[0]
    if first not in names:
        public = sorted(name for name in names if not name.startswith("_"))
        close = difflib.get_close_matches(first, public, n=1, cutoff=0.6)
        raise CallTargetError(
            f"'{module_name}' has no attribute '{first}' (read from {origin}, without importing it)",
            f"did you mean '{close[0]}'?" if close else None,
        )
    node = names[first]
    for part in parts[1:]:  # Class.method: look in the class body, when it is a class defined there
        if not isinstance(node, ast.ClassDef):
            return
        members = _top_level_names(node.body)
        if members is None or part not in members:
            if members is not None and not node.bases:
                raise CallTargetError(f"'{module_name}:{first}' has no attribute '{part}' (read from {origin})")
            return  # it may come from a base class
        node = members[part]


def _find_spec(module_name: str, search_path: Sequence[Path]) -> importlib.machinery.ModuleSpec | None:
    """The spec of `module_name`, found on the file system level by level: no package's __init__ runs."""
    search: list[str] | None = [*map(str, search_path), *sys.path]
    spec: importlib.machinery.ModuleSpec | None = None
    walked = ""
    for part in module_name.split("."):
        walked = f"{walked}.{part}" if walked else part
        if search is None:  # the parent is a module, not a package
            return None
        spec = importlib.machinery.PathFinder.find_spec(walked, search)
        if spec is None and walked == part:
            spec = importlib.machinery.BuiltinImporter.find_spec(
                walked
            ) or importlib.machinery.FrozenImporter.find_spec(walked)
        if spec is None:
            return None
        locations = spec.submodule_search_locations
        search = list(locations) if locations is not None else None
    return spec


def _top_level_names(body: list[ast.stmt]) -> dict[str, ast.AST] | None:
    """The names a module or class body binds (best effort), or None when some are made at run time."""
    names: dict[str, ast.AST] = {}
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.setdefault(node.name, node)
            if node.name == "__getattr__":
                return None
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names.setdefault(name.id, node)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.setdefault(alias.asname or alias.name.split(".")[0], node)
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):  # definitions under a guard
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return names
