"""Plans written by an agent are untrusted: no `call:`, nothing imported, bounded sizes, the sandbox holds."""

from __future__ import annotations

import sys

import pytest

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
    assert run is not None and run.attributes == {"untrusted_plan": True}

    class Yes:
        async def ask(self, request: ReviewRequest) -> ReviewAnswer:
            return ReviewAnswer(action="accept", value={"ok": True})

    other = Engine(store=store)  # as another process would: the plan is reloaded from the stored text
    assert other._plan_of(run).untrusted  # ...under the limits it was first checked with
    resumed = await other.resume(paused.run_id, review_sink=Yes())
    assert resumed.output == {"ok": True}
