"""The reference library's result and review types, on ours."""

from __future__ import annotations

from stratum_core.library._hitl import HumanReviewContext, PendingReview
from stratum_core.library._results import Failure, HumanDecision, Probabilistic, Success

__all__ = ["Failure", "HumanDecision", "HumanReviewContext", "PendingReview", "Probabilistic", "Success"]
