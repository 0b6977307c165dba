"""The reference library's exception names: ours, under the names its programs catch.

`StratumCompileError` is PlanError (a decorated function or plan that does not check); the run-time errors are the
engine's (PreconditionFailed, PostconditionFailed, ParseFailure, BudgetExceeded, ...).
"""

from stratum_core.errors import (
    BudgetExceeded,
    ConsensusFailure,
    ConvergenceFailure,
    HITLTimeoutError,
    ParallelValidationFailed,
    ParseFailure,
    PlanError,
    PostconditionFailed,
    PreconditionFailed,
    StabilityAssertionError,
    StratumError,
)

StratumCompileError = PlanError


class StratumWarning(UserWarning):
    """A warning about how Stratum is used (the reference's warning class)."""


__all__ = [
    "BudgetExceeded",
    "ConsensusFailure",
    "ConvergenceFailure",
    "HITLTimeoutError",
    "ParallelValidationFailed",
    "ParseFailure",
    "PostconditionFailed",
    "PreconditionFailed",
    "StabilityAssertionError",
    "StratumCompileError",
    "StratumError",
    "StratumWarning",
]
