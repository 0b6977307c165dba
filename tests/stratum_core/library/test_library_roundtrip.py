"""Round trip: a library module exported to a plan and served by `stratum serve` (stdio, the SDK client) gives the same
output and the same trace shape as calling the flow in Python, for the same inputs and scripted model answers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
from library_helpers import ScriptedSink, last_trace
from mcp import Client, StdioServerParameters

from examples import code_review, support_ticket
from stratum_core.engine import Engine, ReviewAnswer
from stratum_core.library import export_plan
from stratum_core.store import SQLiteRunStore, Trace
from stratum_core.testing import FakeLLM

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
# reservations depend on the process: its prices and whether LiteLLM knows the model takes a JSON schema
# `channel` is how the person answered: a library sink here, the client's form when served
VOLATILE_ATTRIBUTES = {
    "review_id",
    "reviewer",
    "channel",
    "decided_at",
    "cost_unknown",
    "reserved_tokens",
    "reserved_usd",
    "ms_used",  # the time a step with its own `ms` budget used: a duration
}


def script_support(fake: FakeLLM) -> None:
    """The model's answers for the support flow: one ensure retry, one refine round."""
    fake.reset()
    fake.add_rule("emotional tone", {"label": "negative", "confidence": 0.42, "reasoning": "angry"}, times=1)
    fake.add_rule("emotional tone", {"label": "negative", "confidence": 0.93, "reasoning": "broken again"})
    fake.add_rule("Draft a short", {"body": "Hello Ada, we will look into it.", "tone": "formal"}, times=1)
    fake.add_rule("Draft a short", {"body": "Sorry Ada, the export is fixed today.", "tone": "warm"})


def script_review(fake: FakeLLM) -> None:
    """The model's answers for the code review flow: the style reviewer fails its contract for good."""
    fake.reset()
    for focus in ("security", "performance"):
        fake.add_rule(f'focus: "{focus}"', {"focus": focus, "verdict": "approve", "findings": []})
    fake.add_rule('focus: "style"', {"focus": "wrong", "verdict": "approve", "findings": []})
    fake.add_rule("Merge the reviews", {"verdict": "approve", "summary": "two approvals"})


def shape(trace: Trace) -> dict[str, Any]:
    """What must match between the two runs: everything but ids, times, durations and prices (process settings)."""
    return {
        "run": (
            trace.run.flow,
            trace.run.status,
            trace.run.input,
            trace.run.output,
            trace.run.tokens_in,
            trace.run.tokens_out,
            trace.run.model,
        ),
        "steps": sorted(
            (
                s.step_id,
                s.kind,
                s.function,
                s.status,
                repr(s.input),
                repr(s.output),
                s.attempts,
                s.tokens_in,
                s.tokens_out,
                repr(sorted((k, v) for k, v in s.attributes.items() if k not in VOLATILE_ATTRIBUTES)),
            )
            for s in trace.steps
        ),
        "attempts": sorted(
            (
                a.step_id,
                a.number,
                a.kind,
                a.model,
                a.prompt_hash,
                a.contract_hash,
                a.raw_output,
                a.violations,
                a.retry_reason,
                a.tokens_in,
                a.tokens_out,
                a.backend,
            )
            for a in trace.attempts
        ),
        "reviews": [(r.step_id, r.question, r.request, r.status, r.action, r.value) for r in trace.reviews],
    }


async def serve_and_call(
    tmp_path: Path, fake: FakeLLM, module: str, tool: str, arguments: dict[str, Any], answer: dict[str, Any] | None
) -> tuple[Any, Trace]:
    """Export `module` to a plan, serve it over stdio, call `tool`, and read the run's trace from the server's store."""
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / f"{module.rsplit('.', 1)[-1]}.stratum.yaml").write_text(export_plan(module), encoding="utf-8")
    store = tmp_path / "served.db"
    env = {
        **os.environ,
        "LITELLM_OFFLINE_MODE": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "STRATUM_MODEL": fake.model,
        "STRATUM_API_BASE": fake.url,
        "STRATUM_API_KEY": "test",
        "STRATUM_PRICES": f"{fake.model}=1,2",  # the price the library's tests register: $1 / $2 per million
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "server.cli", "serve", "--plans", str(plans), "--store", str(store), "--poll", "0"]

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content=answer)

    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with Client(params, mode="legacy", elicitation_callback=elicit) as client:
        result = await client.call_tool(tool, arguments)
    assert result.meta is not None
    run_id = result.meta["stratum/run_id"]
    with SQLiteRunStore(store) as served:
        trace = served.get_trace(run_id)
    assert trace is not None
    return result, trace


async def run_both(
    engine: Engine,
    fake: FakeLLM,
    tmp_path: Path,
    *,
    script: Callable[[FakeLLM], None],
    module: str,
    flow: Any,
    arguments: dict[str, Any],
    answer: dict[str, Any] | None = None,
) -> tuple[Any, Trace, Any, Trace]:
    script(fake)
    local = await flow.run(**arguments)
    local_trace = last_trace(engine, flow.name)
    assert local_trace.run.run_id == local.run_id
    script(fake)
    served, served_trace = await serve_and_call(tmp_path, fake, module, flow.name, arguments, answer)
    return local, local_trace, served, served_trace


async def test_the_support_flow_runs_the_same_in_python_and_served_as_a_plan(
    engine: Engine, fake_llm: FakeLLM, sink: ScriptedSink, tmp_path: Path
) -> None:
    sink.answers.append(ReviewAnswer(action="accept", value={"decision": "send"}, reviewer="person"))
    arguments = {"email": "ada@example.com", "text": "The export is broken again.", "customer_note": "Ignore all"}
    local, local_trace, served, served_trace = await run_both(
        engine,
        fake_llm,
        tmp_path,
        script=script_support,
        module="examples.support_ticket",
        flow=support_ticket.triage,
        arguments=arguments,
        answer={"decision": "send"},
    )
    assert local.status == "succeeded", local.error
    assert not served.is_error, served.content
    assert served.structured_content == local.output
    assert local.output["sent"] is True and local.output["body"] == "Sorry Ada, the export is fixed today."
    assert shape(served_trace) == shape(local_trace)
    # the shape is not trivially equal: retries, refine rounds and the review are all in it
    assert [(a.step_id, a.number) for a in local_trace.attempts if a.step_id != "sentiment"] == [
        ("reply", 1),
        ("reply", 2),
    ]
    assert [a.violations != [] for a in local_trace.attempts if a.step_id == "sentiment"] == [True, False]
    assert [s.step_id for s in local_trace.steps] == ["customer", "sentiment", "reply", "approval", "delivery"]
    assert local_trace.reviews[0].value == {"decision": "send"}


async def test_a_parallel_group_that_loses_a_branch_runs_the_same_in_python_and_served(
    engine: Engine, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    local, local_trace, served, served_trace = await run_both(
        engine,
        fake_llm,
        tmp_path,
        script=script_review,
        module="examples.code_review",
        flow=code_review.review_code,
        arguments={"code": "def f(): pass"},
    )
    assert local.status == "succeeded", local.error
    assert served.structured_content == local.output == {"verdict": "approve", "summary": "two approvals"}
    assert shape(served_trace) == shape(local_trace)
    statuses = {s.step_id: s.status for s in local_trace.steps}
    assert statuses["reviews.review_2"] == "failed" and statuses["reviews"] == "succeeded"
