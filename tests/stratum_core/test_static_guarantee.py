"""The static guarantee, as a property over generated plans: what the checker accepts fails only on data or budgets.

See tests/fixtures/static_guarantee.py for the generator, the random model and what counts as a violation;
`python -m bench static_guarantee` runs thousands of plans, CI runs a few hundred here.
"""

from __future__ import annotations

import random
import re

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratum_core.engine import RunResult
from stratum_core.errors import InvalidInput, PostconditionFailed, PreconditionFailed, Problem
from tests.fixtures.static_guarantee import generate_plan, listed, load, run_plan, violation


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_a_plan_the_checker_accepts_fails_at_run_time_only_on_data_or_budgets(seed: int) -> None:
    rng = random.Random(seed)
    text = generate_plan(rng)
    checks: list[Problem] = []
    plan = load(text, checks)
    if plan is None:
        return  # refused by the checker: nothing is promised
    result = anyio.run(run_plan, plan, rng)
    if listed(result, checks):
        return  # it failed at a check the checker listed as left to run time (stratum validate --strict)
    assert violation(result) is None, f"{violation(result)}\n--- plan (seed {seed}) ---\n{text}"


CONSTRUCTS = {
    "optional field": r"required: false",
    "enum": r"enum: \[",
    "range": r"minimum: ",
    "array": r"type: array",
    "nested contract": r"\{type: C\d",
    "infer": r"mode: infer",
    "compute expr": r"expr: ",
    "human": r"mode: human",
    "adaptive": r"mode: adaptive",
    "ensure": r"ensure: ",
    "given": r"given: ",
    "quorum": r"quorum: ",
    "refine": r"refine: ",
    "stable false": r"stable: false",
    "when": r"when: ",
    "parallel all": r"require: all",
    "parallel any": r"require: any",
    "parallel N": r"require: [12]",
    "parallel 0": r"require: 0",
    "validate": r"validate: ",
    "race": r"race: \[",
    "for_each": r"for_each: ",
    "debate": r"debate: ",
    "sub-flow": r"flow: sub",
    "field reference": r"\$\.steps\.s\d+\.output\.",
}


def test_the_generated_plans_the_checker_accepts_cover_every_construct_and_it_refuses_some() -> None:
    accepted: list[str] = []
    refused = 0
    for seed in range(200):
        text = generate_plan(random.Random(seed))
        if load(text) is None:
            refused += 1
        else:
            accepted.append(text)
    missing = [name for name, pattern in CONSTRUCTS.items() if not any(re.search(pattern, t) for t in accepted)]
    assert missing == []
    assert len(accepted) >= 60 and refused >= 20


def test_a_violation_is_any_failure_but_a_false_condition_or_a_budget() -> None:
    def failed(error: Exception) -> RunResult:
        return RunResult(run_id="r", status="failed", error=error)  # type: ignore[arg-type]

    assert violation(failed(PreconditionFailed("given: x > 1", condition="x > 1"))) is None
    assert violation(failed(PostconditionFailed("no", history=[["ensure: result.a > 1 (actual: 0)"]]))) is None
    assert violation(failed(PostconditionFailed("no", history=[["schema: result: expected string, got 3"]])))
    assert violation(failed(PostconditionFailed("no", history=[["ensure: x could not be evaluated: boom"]])))
    assert violation(failed(InvalidInput("bad", field="s", binding="$.input.s", violations=["input.s: bad"])))
