"""Plans written by an agent are untrusted: no `call:`, nothing imported, bounded sizes, the sandbox holds."""

from __future__ import annotations

import sys

import pytest
from inline_snapshot import snapshot

from stratum_core.engine import Engine
from stratum_core.errors import ExpressionError, PlanError
from stratum_core.plan import load_plan_text
from tests.fixtures.sandbox_corpus import ESCAPES, escape_plan

CALLS_PYTHON = """
version: "1"
functions:
  shell:
    mode: compute
    input: {cmd: {type: string}}
    output: {type: string}
    call: os:system
flows:
  go:
    input: {cmd: {type: string}}
    steps: [{id: run, function: shell, inputs: {cmd: $.input.cmd}}]
"""


def test_a_call_target_is_refused_and_never_imported() -> None:
    sys.modules.pop("json.tool", None)
    text = CALLS_PYTHON.replace("os:system", "json.tool:main")
    with pytest.raises(PlanError) as raised:
        load_plan_text(text, untrusted=True)
    (problem,) = raised.value.problems
    assert problem.path == "functions.shell.call"
    assert problem.message == "a plan sent by a client cannot call Python code"
    assert problem.line == 8
    assert "json.tool" not in sys.modules


def test_the_same_plan_is_fine_when_trusted() -> None:
    assert load_plan_text(CALLS_PYTHON).functions["shell"].mode == "compute"


def test_oversized_plans_are_refused_before_parsing() -> None:
    with pytest.raises(PlanError, match="at most 64000 characters"):
        load_plan_text("#" * 70_000, untrusted=True)


def test_too_many_steps_are_refused() -> None:
    steps = "\n".join(f"      - {{id: s{i}, function: f, inputs: {{}}}}" for i in range(101))
    text = f"""
version: "1"
functions:
  f: {{mode: compute, input: {{}}, output: {{type: integer}}, expr: "1"}}
flows:
  big:
    input: {{}}
    steps:
{steps}
"""
    with pytest.raises(PlanError, match="at most 100 steps"):
        load_plan_text(text, untrusted=True)


@pytest.mark.parametrize(("escape", "words"), ESCAPES, ids=[text[:30] for text, _ in ESCAPES])
async def test_sandbox_escapes_in_an_untrusted_plan_are_refused_at_load_or_at_run(
    escape: str, words: str | tuple[str, ...]
) -> None:
    text = escape_plan(escape)
    try:
        plan = load_plan_text(text, untrusted=True)
    except PlanError as error:
        assert error.problems  # refused at load time, with a located problem
        return
    result = await Engine().run(plan, "go", {"text": "hello", "items": [1, 2, 3]})
    assert result.status == "failed"
    assert isinstance(result.error, ExpressionError)


async def test_a_run_of_an_untrusted_plan_is_resumed_under_the_same_limits() -> None:
    from stratum_core.engine import ReviewAnswer, ReviewRequest
    from stratum_core.store import MemoryRunStore

    text = """
version: "1"
contracts:
  Ok:
    ok: {type: boolean}
functions:
  ask: {mode: human, question: Go?, input: {}, output: Ok}
flows:
  go:
    input: {}
    steps: [{id: ask, function: ask, inputs: {}}]
"""
    plan = load_plan_text(text, source="<agent plan 1>", untrusted=True)
    assert plan.untrusted
    store = MemoryRunStore()
    paused = await Engine(store=store).run(plan, "go", {})
    run = store.get_run(paused.run_id)
    assert run is not None and run.attributes == {"untrusted_plan": True, "backend": {"name": "local"}}

    class Yes:
        async def ask(self, request: ReviewRequest) -> ReviewAnswer:
            return ReviewAnswer(action="accept", value={"ok": True})

    other = Engine(store=store)  # as another process would: the plan is reloaded from the stored text
    assert (await other._plan_of(run)).untrusted  # ...under the limits it was first checked with
    resumed = await other.resume(paused.run_id, review_sink=Yes())
    assert resumed.output == {"ok": True}


FAN_OUT = """
version: "1"
functions:
  numbers:
    mode: compute
    input: {n: {type: integer}}
    output: {type: array, items: {type: integer}}
    expr: "list(range(n))"
  one: {mode: compute, input: {x: {type: integer}}, output: {type: integer}, expr: "x"}
flows:
  inner:
    input: {n: {type: integer}}
    steps:
      - {id: made, function: numbers, inputs: {n: $.input.n}}
      - {id: each, for_each: $.steps.made.output, step: {function: one, inputs: {x: $.item}}}
  go:
    input: {n: {type: integer}}
    steps:
      - {id: made, function: numbers, inputs: {n: $.input.n}}
      - {id: each, for_each: $.steps.made.output, step: {flow: inner, inputs: {n: $.input.n}}}
"""


async def test_a_for_each_over_a_computed_list_is_bounded_in_fan_out() -> None:
    plan = load_plan_text(FAN_OUT, untrusted=True)
    result = await Engine().run(plan, "go", {"n": 300})
    assert result.status == "failed" and result.error is not None
    assert result.error.message == snapshot(
        "for_each: $.steps.made.output has 300 items, and a plan sent by a client may run a step over at most 100"
    )
    assert (await Engine().run(load_plan_text(FAN_OUT), "go", {"n": 30})).status == "succeeded"  # trusted: no bound


async def test_an_untrusted_run_is_bounded_in_total_steps() -> None:
    plan = load_plan_text(FAN_OUT, untrusted=True)
    engine = Engine()
    result = await engine.run(plan, "go", {"n": 90})  # 1 + 1 + 90 sub-flows x (1 + 1 + 90): 8,282 steps
    assert result.status == "failed" and result.error is not None
    assert "the run would start more than 1000 steps, the limit for a plan sent by a client" in str(result.error)
    steps = engine.store.get_steps(result.run_id)
    assert len(steps) <= 1_000


def test_flows_nested_too_deep_are_refused_in_an_untrusted_plan() -> None:
    flows = (
        "".join(f"  f{i}:\n    input: {{}}\n    steps: [{{id: s, flow: f{i + 1}, inputs: {{}}}}]\n" for i in range(4))
        + "  f4:\n    input: {}\n    steps: [{id: s, function: one, inputs: {}}]\n"
    )
    one = '  one: {mode: compute, input: {}, output: {type: integer}, expr: "1"}\n'
    text = f'version: "1"\nfunctions:\n{one}flows:\n{flows}'
    with pytest.raises(PlanError) as caught:
        load_plan_text(text, untrusted=True)
    assert [problem.message for problem in caught.value.problems] == snapshot(
        [
            "a plan sent by a client may nest flows at most 3 deep; this one calls f0 -> f1 -> f2 -> f3",
            "a plan sent by a client may nest flows at most 3 deep; this one calls f1 -> f2 -> f3 -> f4",
        ]
    )
    assert load_plan_text(text).flows.keys() == {"f0", "f1", "f2", "f3", "f4"}  # trusted: any depth


UNLISTED_MODEL = """
version: "1"
functions:
  ask: {mode: infer, intent: Say hi., input: {}, output: {type: string}, model: openai/o1-pro}
flows:
  go:
    input: {}
    steps: [{id: s, function: ask, inputs: {}}]
"""


async def test_an_untrusted_plan_may_name_only_the_servers_models() -> None:
    from stratum_core.engine import EngineConfig

    engine = Engine(config=EngineConfig(model="openai/gpt-4.1-mini"))
    result = await engine.run(load_plan_text(UNLISTED_MODEL, untrusted=True), "go", {})
    assert result.status == "failed" and result.error is not None
    assert result.error.message == snapshot(
        "the model 'openai/o1-pro' is not one of the server's configured models (openai/gpt-4.1-mini), the only "
        "ones a plan sent by a client may use: leave `model:` out to use the server's default"
    )
    assert engine.store.get_trace(result.run_id).attempts == []  # type: ignore[union-attr]  # no call was made


def test_checking_a_plans_constant_expressions_is_bounded_in_total() -> None:
    from tests.fixtures.sandbox_corpus import HOSTILE_PLANS

    [plan] = [text for name, text, _, _ in HOSTILE_PLANS if name.startswith("1,150 constant")]
    with pytest.raises(PlanError) as caught:
        load_plan_text(plan)
    [problem] = caught.value.problems
    assert problem.message.startswith("checking the plan's constant expressions took too")
    assert problem.hint == "the plan has too many or too costly expressions that read no data"
