"""How fast the expression sandbox refuses each escape and bomb of the corpus, and evaluates ordinary checks.

Run from the repository root: python -m bench sandbox
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from stratum_core.errors import ExpressionError
from stratum_core.expressions import DEFAULT_LIMITS, ExpressionSyntaxError, compile_expression
from stratum_core.expressions._expression import _compile
from tests.fixtures.sandbox_corpus import ESCAPES

REPEATS = 5
ENV: dict[str, Any] = {
    "result": {"confidence": 0.42, "label": "a", "tags": ["urgent", "billing"], "body": "We are SORRY."},
    "text": "  hello world  ",
    "items": [1, 2, 3, 4],
}
ORDINARY = [
    "result.confidence > 0.7 and len(result.tags) <= 3",
    "result.label in ['a', 'b']",
    "all(len(t) < 10 for t in result.tags)",
    "'sorry' in result.body.lower()",
]


def _refusal_ms(text: str) -> float:
    started = time.perf_counter()
    try:
        compile_expression(text).evaluate(ENV)
    except (ExpressionSyntaxError, ExpressionError):
        return (time.perf_counter() - started) * 1000
    raise AssertionError(f"not refused: {text[:60]}")


def main() -> None:
    """Print the median and worst refusal time over the corpus, and the cost of ordinary checks."""
    medians = {text: statistics.median(_refusal_ms(text) for _ in range(REPEATS)) for text, _ in ESCAPES}
    worst_text, worst = max(medians.items(), key=lambda item: item[1])
    print(
        f"{len(ESCAPES)} escapes and bombs, each the median of {REPEATS} tries: median of medians "
        f"{statistics.median(medians.values()):.3f} ms, slowest {worst:.1f} ms ({worst_text[:40]!r}); "
        f"{sum(m < 100 for m in medians.values())}/{len(medians)} under 100 ms"
    )
    compiled = [compile_expression(text) for text in ORDINARY]
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        for expression in compiled:
            expression.evaluate(ENV)
    per_eval_us = (time.perf_counter() - started) / (rounds * len(compiled)) * 1e6
    started = time.perf_counter()
    for _ in range(200):
        for text in ORDINARY:
            _compile(text, DEFAULT_LIMITS)  # the first compile of a text; later ones come from the cache
    per_compile_us = (time.perf_counter() - started) / (200 * len(ORDINARY)) * 1e6
    print(
        f"ordinary postconditions: {per_compile_us:.0f} us to compile (once per text, then cached), "
        f"{per_eval_us:.1f} us to evaluate (mean)"
    )


if __name__ == "__main__":
    main()
