"""The result types of steps: Probabilistic[T], HumanDecision[T], and a `require=0` group's Success / Failure.

`Probabilistic` is what a `stable=False` infer returns, `HumanDecision` what `await_human` returns.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from stratum_core.errors import StabilityAssertionError

__all__ = ["Failure", "HumanDecision", "Outcome", "Probabilistic", "Success"]

T = TypeVar("T")


@dataclass(frozen=True)
class Probabilistic(Generic[T]):
    """Several samples of one function: the modal value, every sample, and the share that agreed with the mode.

    The return annotation of an `@infer(stable=False)` function: `-> Probabilistic[Sentiment]`.
    """

    value: T
    samples: Sequence[T] = field(default_factory=tuple)
    agreement: float = 1.0

    def most_likely(self) -> T:
        """The modal value (what most samples said)."""
        return self.value

    def sample(self) -> T:
        """One of the samples, at random (the modal value when there are none)."""
        return random.choice(list(self.samples)) if self.samples else self.value

    def assert_stable(self, threshold: float = 0.9) -> T:
        """The modal value, or StabilityAssertionError when fewer than `threshold` of the samples agreed."""
        if self.agreement < threshold:
            raise StabilityAssertionError(
                f"{self.agreement:.2f} of the samples agreed, below the required {threshold}",
                agreement=self.agreement,
                required=threshold,
            )
        return self.value


@dataclass(frozen=True)
class HumanDecision(Generic[T]):
    """What a person decided in `await_human`, and who, why and when.

    `reviewer`, `rationale` and `decided_at` are None when the decision is the `on_timeout` fallback.
    """

    value: T
    review_id: str
    reviewer: str | None = None
    rationale: str | None = None
    decided_at: datetime.datetime | None = None


class Success(dict[str, Any], Generic[T]):
    """A branch of a `require=0` group that succeeded: `.value`; also the dict `{"ok": True, "output": value}`."""

    ok = True

    def __init__(self, value: T) -> None:
        super().__init__(ok=True, output=value)
        self.value = value

    def __repr__(self) -> str:
        return f"Success(value={self.value!r})"


class Failure(dict[str, Any]):
    """A branch of a `require=0` group that failed: `.exception`; also the dict `{"ok": False, "error": text}`.

    `error` is how the group recorded the failure (by default the exception's type and message).
    """

    ok = False

    def __init__(self, exception: BaseException, error: str | None = None) -> None:
        super().__init__(ok=False, error=error if error is not None else f"{type(exception).__name__}: {exception}")
        self.exception = exception

    def __repr__(self) -> str:
        return f"Failure(exception={self.exception!r})"


Outcome = Success[T] | Failure
"""One branch's outcome in a `parallel(..., require=0)` group."""
