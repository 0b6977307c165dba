"""Every plan in plans/ loads and checks clean, and together they use every construct of the language."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratum_core.plan import (
    AdaptiveFunction,
    CallStep,
    ComputeFunction,
    DebateStep,
    ForEachStep,
    HumanFunction,
    InferFunction,
    ParallelStep,
    Plan,
    RaceStep,
    load_plan,
)

PLANS_DIR = Path(__file__).parents[3] / "plans"
PLANS = sorted(PLANS_DIR.glob("*.stratum.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=../stratum_core/plan/plan.schema.json"


@pytest.mark.parametrize("path", PLANS, ids=[p.name for p in PLANS])
def test_example_plan_loads_and_checks_clean(path: Path) -> None:
    plan = load_plan(path)
    assert plan.flows, "an example plan has at least one flow"
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE


def _constructs(plan: Plan) -> set[str]:
    found = {f"version {plan.version}"}
    for contract in plan.contracts.values():
        for spec in contract.fields.values():
            found |= {"enum"} if spec.enum else set()
            found |= {"optional field"} if not spec.required else set()
            found |= {"opaque field"} if spec.opaque else set()
            found |= {"range"} if spec.minimum is not None or spec.max_length is not None else set()
            found |= {"nested contract"} if spec.type in plan.contracts else set()
            found |= {"array field"} if spec.type == "array" else set()
    for fn in plan.functions.values():
        found.add(f"mode {fn.mode}")
        found |= {"given"} if fn.given else set()
        found |= {"ensure"} if fn.ensure else set()
        found |= {"budget"} if fn.budget else set()
        if isinstance(fn, InferFunction):
            found |= {"context"} if fn.context else set()
            found |= {"model"} if fn.model else set()
            found |= {"temperature"} if fn.temperature is not None else set()
            found |= {f"cache {fn.cache}"} if fn.cache != "none" else set()
            found |= {"stable false"} if not fn.stable else set()
            found |= {"quorum"} if fn.quorum else set()
            found |= {"refine"} if fn.refine else set()
            found |= {"executor agent"} if fn.executor == "agent" else set()
        if isinstance(fn, ComputeFunction):
            found |= {"compute call"} if fn.call else set()
            found |= {"compute expr"} if fn.expr else set()
            found |= {"compute by agent"} if not fn.call and not fn.expr else set()
        if isinstance(fn, HumanFunction):
            found |= {"options"} if fn.options else set()
            found |= {"timeout"} if fn.timeout else set()
            found |= {"on_timeout value"} if fn.on_timeout != "raise" else set()
        if isinstance(fn, AdaptiveFunction):
            found.add("dispatch")
    for flow in plan.flows.values():
        found |= {"flow budget"} if flow.budget else set()
        found |= {"flow result"} if flow.result else set()
        for step in flow.steps:
            found |= {"when"} if step.when else set()
            found |= {"depends_on"} if step.depends_on else set()
            if isinstance(step, CallStep):
                found |= {"sub-flow"} if step.flow else set()
                found |= {"step budget"} if step.budget else set()
            found |= {"parallel"} if isinstance(step, ParallelStep) else set()
            if isinstance(step, ParallelStep):
                found |= {"validate"} if step.parallel.validate_ else set()
                found |= {f"require {step.parallel.require}"}
            found |= {"race"} if isinstance(step, RaceStep) else set()
            found |= {"for_each"} if isinstance(step, ForEachStep) else set()
            if isinstance(step, DebateStep):
                found.add("debate")
                found |= {"synthesize"} if step.debate.synthesize else set()
    return found


def test_the_example_plans_together_use_every_construct() -> None:
    used = set().union(*(_constructs(load_plan(path)) for path in PLANS))
    wanted = {
        "version 1", "version 0.2", "enum", "optional field", "opaque field", "range", "nested contract",
        "array field", "mode infer", "mode compute", "mode human", "mode adaptive", "given", "ensure", "budget",
        "context", "model", "temperature", "cache session", "cache global", "stable false", "quorum", "refine",
        "executor agent", "compute call", "compute expr", "compute by agent", "options", "timeout",
        "on_timeout value", "dispatch", "flow budget", "flow result", "when", "depends_on", "sub-flow",
        "step budget", "parallel", "validate", "require 2", "race", "for_each", "debate", "synthesize",
    }  # fmt: skip
    assert wanted - used == set()


def test_the_reference_example_plan_uses_the_reference_spellings() -> None:
    text = (PLANS_DIR / "reference_v01.stratum.yaml").read_text(encoding="utf-8")
    assert 'version: "0.2"' in text  # skip_if exists from 0.2 on
    for spelling in ("values: [", "skip_if:", "depends_on:", "retries:", "budget:"):
        assert spelling in text
