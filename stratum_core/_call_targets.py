"""Resolving a compute function's `call:` target (`package.module:function`) to the callable it names.

The module is looked up beside the plan file first, then in the plan's `python_path` folders, then on sys.path.
Importing runs the module's top-level code, which the plan's owner wrote; nothing else of it runs here. The checker
uses this to report a target that cannot be called, and the engine to call it, so both follow exactly one rule.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CallTargetError", "resolve_call_target"]

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
