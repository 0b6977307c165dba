"""Money and tokens on Temporal: the run's workflow holds the ledger, so steps running at the same time on different
workers reserve from the same envelopes, as in process (reserve before each model call, settle after it)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from temporalio.client import Client

from stratum_core.backends import TemporalSettings
from stratum_core.backends.temporal import TemporalEngine
from stratum_core.plan import load_plan
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM, Reply
from tests.stratum_core.backends.temporal.conftest import TEMPORAL_TEST_TIMEOUT, WorkerProcess, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TEMPORAL_TEST_TIMEOUT, method="thread")]
GUARD = 300.0

# Output tokens cost $0.001 each, input tokens nothing; each call may answer 16 tokens ($0.016 at worst, and the
# test LLM answers that many). The flow's $0.025 pays for one call, not two: the second is refused before its request.
PLAN = """\
version: "1"
prices:
  "{model}": {{input: 0, output: 1000}}
contracts:
  Answer:
    text: {{type: string, minLength: 1}}
functions:
  left:
    mode: infer
    intent: Answer from the left.
    input: {{topic: {{type: string}}}}
    output: Answer
    max_tokens: 16
  right:
    mode: infer
    intent: Answer from the right.
    input: {{topic: {{type: string}}}}
    output: Answer
    max_tokens: 16
flows:
  both:
    input: {{topic: {{type: string}}}}
    output: {{type: array, items: {{type: Answer}}}}
    budget: {{usd: 0.025}}
    steps:
      - id: sides
        parallel:
          steps:
            - {{id: left, function: left, inputs: {{topic: $.input.topic}}}}
            - {{id: right, function: right, inputs: {{topic: $.input.topic}}}}
    result: $.steps.sides.output
"""


async def test_two_steps_on_two_workers_cannot_both_reserve_what_only_one_fits(
    client: Client,
    settings: TemporalSettings,
    store: SQLiteRunStore,
    store_path: Path,
    fake_llm: FakeLLM,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "an answer"}, prompt_tokens=10, completion_tokens=16))
    path = tmp_path / "budget.stratum.yaml"
    path.write_text(PLAN.format(model=fake_llm.model))
    plan = load_plan(path)
    for _ in range(2):
        start_worker(workers, settings, store_path, fake_llm, tmp_path)
    engine = TemporalEngine(settings=settings, store=store, client=client)
    with anyio.fail_after(GUARD):
        result = await engine.run(plan, "both", {"topic": "tea"})
    assert len(fake_llm.requests) == 1  # exactly one call was let through
    assert result.status == "failed"
    assert result.error is not None and "no request was made" in result.error.message, result.error
    trace = store.get_trace(result.run_id)
    assert trace is not None
    [refused] = [s for s in trace.steps if s.error and s.error.get("type") == "BudgetExceeded"]
    assert refused.step_id in ("sides.left", "sides.right")
    message = str(refused.error and refused.error["message"])
    assert "cost budget of $0.025 (flow 'both')" in message and "no request was made" in message, message
    assert trace.run.cost_usd <= 0.025  # nothing overspent
