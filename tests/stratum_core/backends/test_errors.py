"""A run error crosses a process boundary (a Temporal activity, a Ray worker) as its dict and comes back the same."""

from __future__ import annotations

import pytest

from stratum_core import errors
from stratum_core.backends._errors import run_error_from_dict

SAMPLES: list[errors.RunError] = [
    errors.PostconditionFailed("ensure failed", history=[["a > 1"], ["a > 1", "b"]], step_id="draft"),
    errors.ParseFailure("never parsed", history=[["not JSON"]], step_id="draft"),
    errors.BudgetExceeded("over", dimension="usd", limit=0.01, used=0.02, budget="flow 'f'", step_id="s"),
    errors.ConsensusFailure("no quorum", votes={"a": 1, "b": 1}, threshold=2, step_id="vote"),
    errors.StabilityAssertionError("unstable", agreement=0.6, required=0.9, step_id="s"),
    errors.ConvergenceFailure("no", iterations=3, condition="result.ok", step_id="r"),
    errors.HITLTimeoutError("late", review_id="r1", step_id="h"),
    errors.PreconditionFailed("given", condition="x > 0", actual="x = -1", step_id="g"),
]


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_run_error_comes_back_with_its_class_dict_and_fields(error: errors.RunError) -> None:
    restored = run_error_from_dict(error.to_dict())
    assert isinstance(restored, type(error))
    assert restored.to_dict() == error.to_dict()
    assert str(restored) == str(error)
    for name, value in error.details().items():
        assert getattr(restored, name) == value or list(getattr(restored, name)) == list(value)


def test_derived_fields_follow_the_restored_ones() -> None:
    error = run_error_from_dict(SAMPLES[0].to_dict())
    assert isinstance(error, errors.PostconditionFailed)
    assert list(error.violations) == ["a > 1", "b"]
    assert error.retry_history == [["a > 1"], ["a > 1", "b"]]
