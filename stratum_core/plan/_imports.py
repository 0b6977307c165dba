"""Check a compute function's `call:` target without calling it (the rule itself is in stratum_core._call_targets)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeAlias

from stratum_core._call_targets import CallTargetError, find_call_target, resolve_call_target

__all__ = ["CallChecks", "call_target_problem"]

CallChecks: TypeAlias = bool | Literal["static"]
"""How the loader checks `call:` targets: True imports the module (its top-level code runs), "static" finds the
module and the name without running anything, False does not check them."""


def call_target_problem(
    target: str, *, search_path: Sequence[Path], statically: bool = False
) -> tuple[str, str | None] | None:
    """Why `package.module:function` cannot be called (message, hint), or None when it can."""
    try:
        if statically:
            find_call_target(target, search_path=search_path)
        else:
            resolve_call_target(target, search_path=search_path)
    except CallTargetError as error:
        return error.message, error.hint
    return None
