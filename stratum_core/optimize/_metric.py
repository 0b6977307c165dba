"""The optimizer's metric: Stratum's own judgement of an answer, with Stratum's own words as feedback.

An answer scores 1 when it parses, meets the output contract and every `ensure` (the checks every attempt of a run
passes through), and matches the label; otherwise 0, and the feedback is the violation text a retry would be sent.
A metric expression (`--metric`, evaluated by the sandbox on `result`, `label` and the inputs) replaces the label
match: true/false, or a number clipped to 0..1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stratum_core.engine._infer import check_answer
from stratum_core.engine._infer_strategies import compiled
from stratum_core.engine._output_checks import output_violations
from stratum_core.engine._prompt import output_schema
from stratum_core.errors import ConfigurationError, ExpressionError
from stratum_core.expressions import ExpressionSyntaxError, compile_expression
from stratum_core.plan import Contract, InferFunction

__all__ = ["Judge", "Judgement"]

_MAX_MISMATCHES = 5


@dataclass(frozen=True)
class Judgement:
    """A score in 0..1 and what to tell the optimizer about it."""

    score: float
    feedback: str


class Judge:
    """Scores one answer of `fn` to one example."""

    def __init__(self, fn: InferFunction, contracts: Mapping[str, Contract], *, metric: str | None = None) -> None:
        self.fn = fn
        self.output = output_schema(fn, contracts)
        self.ensures = tuple((text, compiled(text, step_id=fn.name)) for text in fn.ensure)
        self.metric_text = metric
        self.metric = None
        if metric is not None:
            try:
                self.metric = compile_expression(metric)
            except (ExpressionSyntaxError, ExpressionError) as e:
                raise ConfigurationError(f"--metric: {metric}: {e}") from e

    def __call__(self, content: str, inputs: Mapping[str, Any], label: Any) -> Judgement:
        """Judge the raw answer `content` to `inputs`, whose expected output is `label`."""
        fn = self.fn
        checked = check_answer(
            content,
            output=self.output,
            inputs=inputs,
            ensures=self.ensures,
            output_checks=lambda value: output_violations(fn, value, inputs, None),
        )
        if checked.violations:
            return Judgement(0.0, _rejected(checked.violations))
        if self.metric is not None:
            return self._by_expression(checked.value, inputs, label)
        mismatches = _mismatches(checked.value, label, "result")
        if mismatches:
            return Judgement(0.0, _rejected(mismatches[:_MAX_MISMATCHES]))
        return Judgement(1.0, "The answer met the output contract, every ensure, and the label.")

    def _by_expression(self, value: Any, inputs: Mapping[str, Any], label: Any) -> Judgement:
        assert self.metric is not None
        try:
            result = self.metric.evaluate({**inputs, "result": value, "label": label})
        except ExpressionError as e:
            return Judgement(0.0, f"The metric {self.metric_text} could not be evaluated: {e.message}")
        if isinstance(result, bool):
            score = 1.0 if result else 0.0
        elif isinstance(result, int | float):
            score = min(1.0, max(0.0, float(result)))
        else:
            return Judgement(0.0, f"The metric {self.metric_text} gave {_show(result)}, not true/false or a number.")
        verdict = "met" if score >= 1.0 else "partly met" if score > 0 else "did not meet"
        return Judgement(score, f"The answer {verdict} the metric {self.metric_text} (score {score:g}).")


def _rejected(lines: list[str]) -> str:
    return "The answer was rejected:\n" + "\n".join(f"- {line}" for line in lines)


def _mismatches(value: Any, label: Any, path: str) -> list[str]:
    """Where `value` differs from `label`; a label object only constrains the fields it has."""
    if isinstance(label, Mapping):
        if not isinstance(value, Mapping):
            return [f"label: {path} is {_show(value)}, expected an object like {_show(label)}"]
        out: list[str] = []
        for key, expected in label.items():
            if key not in value:
                out.append(f"label: {path}.{key} is missing, expected {_show(expected)}")
            else:
                out.extend(_mismatches(value[key], expected, f"{path}.{key}"))
        return out
    if _equal(value, label):
        return []
    return [f"label: {path} is {_show(value)}, expected {_show(label)}"]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:119] + "…"
