"""Check a compute function's `call:` target without calling it (the rule itself is in stratum_core._call_targets)."""

from __future__ import annotations

from pathlib import Path

from stratum_core._call_targets import CallTargetError, resolve_call_target

__all__ = ["call_target_problem"]


def call_target_problem(target: str, *, base_dir: Path | None) -> tuple[str, str | None] | None:
    """Why `package.module:function` cannot be called (message, hint), or None when it can."""
    try:
        resolve_call_target(target, base_dir=base_dir)
    except CallTargetError as error:
        return error.message, error.hint
    return None
