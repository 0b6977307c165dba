"""A run waiting for a person survives SIGKILL: another process resumes it without re-running finished steps, on
either durable store (a SQLite file, a PostgreSQL database)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from stratum_core.backends import open_run_store
from stratum_core.engine import Engine, EngineConfig
from stratum_core.llm import LiteLLMClient
from stratum_core.testing import FakeLLM

PLAN = """
version: "1"
contracts:
  Draft:
    body: {type: string}
  Approval:
    approved: {type: boolean}
functions:
  write:
    mode: infer
    intent: Write a short reply.
    input: {text: {type: string}}
    output: Draft
  approve:
    mode: human
    question: Send it?
    input: {draft: {type: Draft}}
    output: Approval
  finish:
    mode: compute
    input: {body: {type: string}, approved: {type: boolean}}
    output: {type: string}
    expr: "body if approved else 'held back'"
flows:
  reply:
    input: {text: {type: string}}
    steps:
      - {id: draft, function: write, inputs: {text: $.input.text}}
      - {id: approval, function: approve, inputs: {draft: $.steps.draft.output}}
      - id: done
        function: finish
        inputs: {body: $.steps.draft.output.body, approved: $.steps.approval.output.approved}
"""

# The first process: runs the flow with a sink that never answers, and says when it is waiting.
WORKER = textwrap.dedent(
    """
    import sys, anyio
    from stratum_core.engine import Engine, EngineConfig
    from stratum_core.llm import LiteLLMClient
    from stratum_core.plan import load_plan
    from stratum_core.backends import open_run_store

    class Forever:
        async def ask(self, request):
            print("WAITING", request.run_id, request.review_id, flush=True)
            await anyio.sleep_forever()

    async def main():
        store = open_run_store(sys.argv[2])
        engine = Engine(store=store, llm=LiteLLMClient(), config=EngineConfig(model=sys.argv[3], api_base=sys.argv[4]))
        await engine.run(load_plan(sys.argv[1]), "reply", {"text": "my order is late"}, review_sink=Forever())

    anyio.run(main)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_run_killed_while_waiting_for_a_person_resumes_in_another_process(
    tmp_path: Path, fake_llm: FakeLLM, kind: str, request: pytest.FixtureRequest
) -> None:
    plan_file = tmp_path / "reply.stratum.yaml"
    plan_file.write_text(PLAN, encoding="utf-8")
    database = str(tmp_path / "runs.db") if kind == "sqlite" else request.getfixturevalue("postgres_url")
    fake_llm.add_rule("Write a short reply", {"body": "Sorry for the delay."})
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    with subprocess.Popen(
        [sys.executable, "-c", WORKER, str(plan_file), database, fake_llm.model, fake_llm.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as worker:
        assert worker.stdout is not None and worker.stderr is not None
        line = worker.stdout.readline()  # blocks until the worker waits for the person (or dies)
        if not line.startswith("WAITING"):
            worker.kill()
            pytest.fail(f"the worker did not reach the human step: {worker.stderr.read()}")
        _, run_id, review_id = line.split()
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    assert len(fake_llm.requests) == 1

    with closing(open_run_store(database)) as store:
        run = store.get_run(run_id)
        assert run is not None and run.status == "running"  # killed: never recorded as finished
        store.answer_review(review_id, action="accept", value={"approved": True}, reviewer="ann", rationale=None)
        engine = Engine(
            store=store, llm=LiteLLMClient(), config=EngineConfig(model=fake_llm.model, api_base=fake_llm.url)
        )
        result = await engine.resume(run_id)
        assert result.status == "succeeded", result.error
        assert result.output == "Sorry for the delay."
        # the infer step that finished before the kill was not asked again
        assert len(fake_llm.requests) == 1
        trace = store.get_trace(run_id)
        assert trace is not None
        assert [s.status for s in trace.steps] == ["succeeded", "succeeded", "succeeded"]
        assert json.dumps(trace.reviews[0].value) == '{"approved": true}'
