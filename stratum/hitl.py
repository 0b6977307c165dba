"""Human review, as the reference library spells it: `await_human(context=HumanReviewContext(...), ...)`.

A sink with `async emit(review)` (the reference's) or with `async ask(request)` (ours) goes to
`configure(review_sink=...)`; the review is a step of the run, in the run store and the trace.
"""

from stratum_core.library._hitl import (
    ConsoleReviewSink,
    EmitSink,
    HumanReviewContext,
    PendingReview,
    ReviewSink,
    await_human,
)
from stratum_core.library._results import HumanDecision

__all__ = [
    "ConsoleReviewSink",
    "EmitSink",
    "HumanDecision",
    "HumanReviewContext",
    "PendingReview",
    "ReviewSink",
    "await_human",
]
