"""`--expect`: how a batch tells a right answer, for its accuracy figure.

Either the name of a field of each input line holding the expected output (compared with the output's field of the
same name when the output has one, else with the whole output), or an expression in the plan language's sandbox
reading `input` (the whole input line) and `output` (the item's output), true when the answer is right.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stratum_core.errors import ExpressionError
from stratum_core.expressions import Expression, ExpressionSyntaxError, compile_expression

__all__ = ["Expectation"]

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Expectation:
    """A compiled `--expect`: a field name, or an expression over `input` and `output`."""

    text: str
    field: str | None
    expression: Expression | None

    @classmethod
    def parse(cls, text: str) -> Expectation:
        """A field name when `text` is one (and not `input`/`output`), else an expression; ValueError says why not."""
        text = text.strip()
        if _FIELD.fullmatch(text) and text not in ("input", "output"):
            return cls(text, text, None)
        try:
            expression = compile_expression(text)
        except ExpressionSyntaxError as e:
            raise ValueError(f"--expect: {e}") from e
        unknown = sorted(expression.names - {"input", "output"})
        if unknown:
            raise ValueError(f"--expect: the expression reads {', '.join(unknown)}; it may read only input and output")
        return cls(text, None, expression)

    def judge(self, line: Mapping[str, Any], output: Any) -> bool | None:
        """Whether `output` is right for the input `line`; None when the line holds no expected value."""
        if self.field is not None:
            if self.field not in line:
                return None
            expected = line[self.field]
            if isinstance(output, Mapping) and self.field in output:
                return bool(output[self.field] == expected)
            return bool(output == expected)
        assert self.expression is not None
        try:
            return bool(self.expression.evaluate({"input": dict(line), "output": output}))
        except ExpressionError:
            return False
