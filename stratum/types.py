"""The reference library's result and review types, on ours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from stratum_core.library._hitl import HumanReviewContext, PendingReview
from stratum_core.library._results import HumanDecision, Probabilistic

__all__ = ["Failure", "HumanDecision", "HumanReviewContext", "PendingReview", "Probabilistic", "Success"]

T = TypeVar("T")


@dataclass(frozen=True)
class Success(Generic[T]):
    """A branch that succeeded (the reference's `parallel(require=0)` outcome)."""

    value: T


@dataclass(frozen=True)
class Failure:
    """A branch that failed (the reference's `parallel(require=0)` outcome)."""

    exception: BaseException
