"""Check a compute function's `call:` target without calling it (the rule itself is in stratum_core._call_targets)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stratum_core._call_targets import CallTargetError, resolve_call_target

__all__ = ["call_target_problem"]


def call_target_problem(target: str, *, search_path: Sequence[Path]) -> tuple[str, str | None] | None:
    """Why `package.module:function` cannot be called (message, hint), or None when it can."""
    try:
        resolve_call_target(target, search_path=search_path)
    except CallTargetError as error:
        return error.message, error.hint
    return None
