"""The public API is a decision: each package's `__all__` is pinned here, and every name in it exists."""

from __future__ import annotations

import importlib

import pytest

PINNED = {
    "stratum_core": [
        "Engine",
        "EngineConfig",
        "Plan",
        "PlanError",
        "ReviewAnswer",
        "ReviewRequest",
        "ReviewSink",
        "RunError",
        "RunObserver",
        "RunResult",
        "StratumError",
        "load_plan",
        "load_plan_text",
    ],
    "stratum_core.engine": [
        "AgentSubmission",
        "AgentTask",
        "Engine",
        "EngineConfig",
        "ReviewAnswer",
        "ReviewRequest",
        "ReviewSink",
        "RunObserver",
        "RunResult",
        "RunStatus",
    ],
    "stratum_core.backends": ["BACKENDS", "BackendName", "TemporalSettings", "engine_for", "open_run_store"],
    "stratum_core.backends.temporal": ["TemporalEngine", "build_worker", "connect", "run_worker"],
    "stratum_core.batch": [
        "Batch",
        "BatchItem",
        "BatchProgress",
        "BatchSummary",
        "Expectation",
        "ItemResult",
        "ItemRunner",
        "ItemStatus",
        "LOOPBACK_ENV",
        "LocalItemRunner",
        "RayItemRunner",
        "ResultsFile",
        "StoredBatch",
        "batch_id_of",
        "batch_tag",
        "item_key",
        "items_from_lines",
        "read_batch",
        "read_items",
        "start_local_ray",
        "summarize",
    ],
    "stratum_core.cli": ["Command", "build_parser", "main"],
    "stratum_core.expressions": [
        "DEFAULT_LIMITS",
        "Expression",
        "ExpressionSyntaxError",
        "FieldRead",
        "Limits",
        "compile_expression",
        "describe_failure",
    ],
    "stratum_core.errors": [
        "AgentStepRequired",
        "BudgetExceeded",
        "ComputeError",
        "ConfigurationError",
        "ConsensusFailure",
        "ConvergenceFailure",
        "ExpressionError",
        "GateKilled",
        "HITLTimeoutError",
        "HumanRejected",
        "InvalidInput",
        "LLMError",
        "ParallelValidationFailed",
        "ParseFailure",
        "PlanError",
        "PostconditionFailed",
        "PreconditionFailed",
        "Problem",
        "RoutingLimitExceeded",
        "RunCancelled",
        "RunError",
        "StabilityAssertionError",
        "StratumError",
    ],
}


@pytest.mark.parametrize("module_name", sorted(PINNED))
def test_public_names_are_pinned_and_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == PINNED[module_name]
    for name in module.__all__:
        assert hasattr(module, name), name


def test_every_error_is_a_stratum_error_and_run_time_errors_name_their_step() -> None:
    from stratum_core import errors

    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, errors.StratumError), name
            if value not in (errors.StratumError, errors.PlanError):
                assert issubclass(value, errors.RunError), name
