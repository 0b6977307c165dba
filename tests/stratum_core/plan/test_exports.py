from __future__ import annotations

import stratum_core.plan


def test_the_public_api_of_the_plan_package_is_pinned() -> None:
    assert sorted(stratum_core.plan.__all__) == [
        "AdaptiveFunction",
        "Budget",
        "CallStep",
        "ComputeFunction",
        "Contract",
        "Debate",
        "DebateStep",
        "Flow",
        "ForEachStep",
        "Function",
        "HumanFunction",
        "InferFunction",
        "PRIMITIVE_TYPES",
        "ParallelGroup",
        "ParallelStep",
        "Plan",
        "Quorum",
        "RaceStep",
        "Reference",
        "Refine",
        "Step",
        "StepRoute",
        "TaskDispatch",
        "TypeSpec",
        "Workflow",
        "find_plan_files",
        "iter_references",
        "load_plan",
        "load_plan_text",
        "load_plans",
        "parse_reference",
    ]
    for name in stratum_core.plan.__all__:
        assert getattr(stratum_core.plan, name) is not None
