"""Deterministic helpers for code_review.stratum.yaml: diff statistics and the Markdown report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def diff_stats(code: str, files: Sequence[str]) -> dict[str, int]:
    """Counts of a unified diff: files touched, lines added and removed (headers excluded)."""
    lines = code.splitlines()
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    return {"files": len(files), "added": added, "removed": removed}


def render_report(verdict: Mapping[str, Any], summary: str, stats: Mapping[str, int]) -> dict[str, str]:
    """The review as a Markdown report, with the blocking issues listed first."""
    decision = str(verdict["decision"]).replace("_", " ")
    title = f"Review: {decision} ({stats['files']} files, +{stats['added']}/-{stats['removed']})"
    lines = [f"# {title}", "", summary, ""]
    blocking = list(verdict.get("blocking") or [])
    if blocking:
        lines += ["## Blocking", *(f"- {item}" for item in blocking), ""]
    lines += ["## Verdict", str(verdict["summary"])]
    return {"title": title, "markdown": "\n".join(lines)}
