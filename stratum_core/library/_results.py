"""The result types of two kinds of steps: `Probabilistic[T]` (a `stable=False` infer) and `HumanDecision[T]`."""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from stratum_core.errors import StabilityAssertionError

__all__ = ["HumanDecision", "Probabilistic"]

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

    def assert_stable(self, threshold: float) -> T:
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
