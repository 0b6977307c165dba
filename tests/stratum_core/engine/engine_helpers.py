"""Helpers the engine tests share (the `store` and `engine` fixtures are in conftest.py)."""

from __future__ import annotations

from typing import Any

from stratum_core.plan import load_plan_text

IN_PRICE, OUT_PRICE = 1e-6, 2e-6
"""The test LLM's price per input and output token in the `engine` fixture."""


def plan(text: str) -> Any:
    """A plan loaded from `text` (named test.stratum.yaml in errors)."""
    return load_plan_text(text, source="test.stratum.yaml")
