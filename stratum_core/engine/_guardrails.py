"""Guardrails: regexes that an output must not match, run by RE2 (linear time, so no pattern can backtrack forever).

A reference plan's `guardrails` are matched case-insensitively and per line (`re.I | re.M`) against the output's
JSON (sorted keys). A match is a violation, retried like a failed `ensure`. Fail-closed: a pattern RE2 cannot run
counts as a match (the loader refuses such patterns first, so this only guards plans built in memory).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import re2

from stratum_core.plan._patterns import re2_problem

__all__ = ["guardrail_violations", "pattern_problem"]

_MAX_PROGRAM = 8 << 20
"""Bytes of memory RE2 may use to compile one pattern."""


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.max_mem = _MAX_PROGRAM
    options.never_nl = False
    return options


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    # (?m): ^ and $ match at line breaks, as re.M does; case-insensitivity comes from the options.
    return re2.compile("(?m)" + pattern, options=_options())


def pattern_problem(pattern: str) -> str | None:
    """Why RE2 cannot use `pattern` (e.g. a back-reference or a lookaround), or None when it can."""
    return re2_problem(_compiled, pattern)


def guardrail_violations(patterns: tuple[str, ...], value: Any) -> list[str]:
    """One violation per pattern that matches the JSON text of `value` (or that cannot be run: fail-closed)."""
    if not patterns:
        return []
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    violations: list[str] = []
    for pattern in patterns:
        try:
            matched = _compiled(pattern).search(text) is not None
        except re2.error:
            matched = True
        if matched:
            violations.append(f"guardrail matched: {pattern!r}")
    return violations
