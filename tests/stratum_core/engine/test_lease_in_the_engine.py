"""The engine advances a run only holding its lease: others are told it is busy, a dead holder's run resumes."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from stratum_core.engine import Engine, EngineConfig, ReviewAnswer, ReviewRequest
from stratum_core.plan import load_plan_text
from stratum_core.store import MemoryRunStore, RunBusy, SQLiteRunStore

PLAN = load_plan_text(
    """
version: "1"
contracts:
  Approval:
    approved: {type: boolean}
functions:
  approve:
    mode: human
    question: Go?
    input: {text: {type: string}}
    output: Approval
  shout:
    mode: compute
    input: {text: {type: string}}
    output: {type: string}
    expr: "text.upper()"
flows:
  gated:
    input: {text: {type: string}}
    output: {type: string}
    steps:
      - {id: approve, function: approve, inputs: {text: $.input.text}}
      - {id: shout, function: shout, inputs: {text: $.input.text}, depends_on: [approve]}
  shout:
    input: {text: {type: string}}
    output: {type: string}
    steps:
      - {id: shout, function: shout, inputs: {text: $.input.text}}
""",
    source="lease.stratum.yaml",
)


class Waiting:
    """A review sink that holds the step (and so the run and its lease) until `release` is set."""

    def __init__(self) -> None:
        self.asked = anyio.Event()
        self.release = anyio.Event()

    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None:
        self.asked.set()
        await self.release.wait()
        return ReviewAnswer(action="accept", value={"approved": True}, channel="test")


async def test_a_second_engine_on_the_same_store_is_told_the_run_is_being_advanced_elsewhere(tmp_path: Path) -> None:
    with SQLiteRunStore(tmp_path / "runs.db") as one, SQLiteRunStore(tmp_path / "runs.db") as two:
        first, second = Engine(store=one), Engine(store=two)
        sink = Waiting()
        outcome = {}

        async def run() -> None:
            outcome["first"] = await first.run(PLAN, "gated", {"text": "go"}, review_sink=sink)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await sink.asked.wait()
                [running] = two.list_runs(status="running").runs
                assert running.lease_holder == first.holder
                with pytest.raises(RunBusy, match="is being advanced elsewhere"):
                    await second.resume(running.run_id)
                assert second.interrupted_runs() == []  # its holder is alive
                sink.release.set()
        assert outcome["first"].status == "succeeded" and outcome["first"].output == "GO"
        ended = two.get_run(running.run_id)
        assert ended is not None and ended.status == "succeeded" and ended.lease_holder is None


async def test_a_run_whose_process_died_is_found_and_resumed_without_rerunning_its_finished_steps() -> None:
    store = MemoryRunStore()
    dead = Engine(store=store)
    paused = await dead.run(PLAN, "gated", {"text": "late"})
    assert paused.status == "paused"
    [review] = store.list_reviews(run_id=paused.run_id)
    store.answer_review(review.review_id, action="accept", value={"approved": True}, reviewer="jane", rationale=None)
    # As a server killed while advancing it leaves it: "running", its lease expired.
    store.update_run(paused.run_id, status="running", lease_holder="gone.example:1:abc", lease_expires=1.0)
    revived = Engine(store=store)
    assert [run.run_id for run in revived.interrupted_runs()] == [paused.run_id]
    done = await revived.resume(paused.run_id)
    assert done.status == "succeeded" and done.output == "LATE"
    assert revived.interrupted_runs() == []


async def test_an_engine_that_loses_its_lease_stops_and_leaves_the_run_to_the_new_holder() -> None:
    store = MemoryRunStore()
    engine = Engine(store=store, config=EngineConfig(lease_ttl=0.2))
    sink = Waiting()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                with pytest.raises(RunBusy, match="was taken over elsewhere"):
                    await engine.run(PLAN, "gated", {"text": "stolen"}, review_sink=sink)

            tg.start_soon(run)
            await sink.asked.wait()
            [running] = store.list_runs(status="running").runs
            # Another process took the run over (as if this one had stalled past its lease).
            store.update_run(running.run_id, lease_holder="other.example:2:def", lease_expires=4_000_000_000.0)
    after = store.get_run(running.run_id)
    assert after is not None and after.status == "running" and after.lease_holder == "other.example:2:def"


async def test_a_finished_run_releases_its_lease() -> None:
    store = MemoryRunStore()
    done = await Engine(store=store).run(PLAN, "shout", {"text": "x"})
    run = store.get_run(done.run_id)
    assert run is not None and run.status == "succeeded" and (run.lease_holder, run.lease_expires) == (None, None)
