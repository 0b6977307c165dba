"""Batches in this process: exact summaries under faults, budgets, re-runs that skip what is done, the results file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_helpers import (
    EXPECTED,
    EXPECTED_CORRECT,
    ITEMS,
    MODEL,
    PRICE,
    done_items,
    script_faults,
    write_items,
    write_plan,
)

from stratum_core.batch import Batch, Expectation, ItemResult, ResultsFile, read_items
from stratum_core.cli import main
from stratum_core.engine import Engine, EngineConfig
from stratum_core.plan import Budget, load_plan
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM, Reply


def make_engine(fake: FakeLLM, store: SQLiteRunStore) -> Engine:
    config = EngineConfig(model=MODEL, api_base=fake.url, prices={MODEL: PRICE}, max_retry_wait=1.0)
    return Engine(store=store, config=config)


async def test_a_200_item_batch_with_faults_is_summarized_exactly(tmp_path: Path, fake_llm: FakeLLM) -> None:
    requests = script_faults(fake_llm)
    plan = load_plan(write_plan(tmp_path))
    expect = Expectation.parse("label")
    items = read_items(write_items(tmp_path), plan, "triage")
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        batch = Batch(make_engine(fake_llm, store), plan, "triage", items, concurrency=8, expect=expect)
        seen: list[ItemResult] = []
        summary = await batch.run(seen.append)

        assert (summary.succeeded, summary.failed, summary.failures) == (
            EXPECTED["succeeded"],
            EXPECTED["failed"],
            EXPECTED["failures"],
        )
        assert (summary.judged, summary.correct, summary.accuracy) == (ITEMS, EXPECTED_CORRECT, 0.7)
        assert summary.stopped is None and summary.not_run == summary.cancelled == 0
        assert sorted(result.index for result in seen) == list(range(ITEMS))
        assert summary.p50_ms is not None and summary.p95_ms is not None and summary.p50_ms <= summary.p95_ms
        # every item is an ordinary run of the store, tagged with the batch
        runs = []
        cursor = None
        while True:
            page = store.list_runs(batch=batch.id, limit=100, cursor=cursor)
            runs.extend(page.runs)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert len(runs) == ITEMS
        assert summary.tokens == sum(run.tokens_in + run.tokens_out for run in runs)
        assert summary.cost_usd == pytest.approx(sum(run.cost_usd for run in runs))
        assert summary.cost_usd > 0
        failed = next(result for result in seen if result.index == 7)
        trace = store.get_trace(str(failed.run_id))
        assert trace is not None and len(trace.attempts) == 2  # the ensure retried once, with the violation
        assert "result.confidence > 0.5" in trace.attempts[-1].violations[0]
    assert requests[3] == 2  # the 429, then the answer
    assert requests[5] == 2 and requests[7] == 2 and requests[0] == 1


async def test_a_batch_run_again_reads_done_items_back_and_runs_none_of_them(tmp_path: Path, fake_llm: FakeLLM) -> None:
    script_faults(fake_llm)
    plan = load_plan(write_plan(tmp_path))
    items = read_items(write_items(tmp_path, 30), plan, "triage")
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        first = await Batch(make_engine(fake_llm, store), plan, "triage", items).run()
        before = len(fake_llm.requests)
        again = Batch(make_engine(fake_llm, store), plan, "triage", items)
        second = await again.run()

        assert len(fake_llm.requests) == before
        assert second.reused == 30 and second.succeeded == first.succeeded and second.failed == first.failed
        assert again.id == Batch(make_engine(fake_llm, store), plan, "triage", items).id

        retried = await Batch(make_engine(fake_llm, store), plan, "triage", items, retry_failed=True).run()
        assert retried.reused == first.succeeded  # the failed ones ran again
        assert len(fake_llm.requests) > before


async def test_a_whole_batch_cost_budget_stops_it_before_it_is_exceeded(tmp_path: Path, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(
        lambda body: True, Reply(json={"label": "pos", "confidence": 0.9}, prompt_tokens=100, completion_tokens=10)
    )
    plan = load_plan(write_plan(tmp_path))
    items = read_items(write_items(tmp_path, 60), plan, "triage")
    budget = Budget(usd=0.01)
    item_budget = Budget(tokens=1200)  # so that each call reserves a bounded answer
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        batch = Batch(
            make_engine(fake_llm, store),
            plan,
            "triage",
            items,
            concurrency=4,
            batch_budget=budget,
            item_budget=item_budget,
        )
        summary = await batch.run()
        spent = sum(run.cost_usd for run in store.list_runs(batch=batch.id, limit=100).runs)

        assert summary.stopped == "budget"
        assert 0 < summary.succeeded < 60 and summary.not_run == 60 - summary.succeeded
        assert spent <= 0.01
        assert len(fake_llm.requests) == summary.succeeded  # a refused call makes no request
        assert "cost budget of $0.01" in str(summary.stop_reason)

        # what it spent counts when it is run again: with the same budget nothing more runs
        requests = len(fake_llm.requests)
        again = await Batch(make_engine(fake_llm, store), plan, "triage", items, batch_budget=budget).run()
        assert again.stopped == "budget" and len(fake_llm.requests) - requests <= 1


async def test_a_per_item_budget_fails_that_item_only(tmp_path: Path, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(
        lambda body: True, Reply(json={"label": "pos", "confidence": 0.9}, prompt_tokens=100, completion_tokens=10)
    )
    plan = load_plan(write_plan(tmp_path))
    items = read_items(write_items(tmp_path, 3), plan, "triage")
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        summary = await Batch(make_engine(fake_llm, store), plan, "triage", items, item_budget=Budget(tokens=50)).run()
    assert summary.failures == {"BudgetExceeded": 3} and summary.stopped is None
    assert fake_llm.requests == []


async def test_lines_that_are_not_objects_or_not_valid_inputs_fail_without_a_model_call(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    fake_llm.add_rule(lambda body: True, Reply(json={"label": "pos", "confidence": 0.9}))
    plan = load_plan(write_plan(tmp_path))
    source = tmp_path / "mixed.jsonl"
    source.write_text('{"text": "fine"}\nnot json\n[1, 2]\n{"text": 3}\n{"other": "x"}\n\n', encoding="utf-8")
    items = read_items(source, plan, "triage")
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        summary = await Batch(make_engine(fake_llm, store), plan, "triage", items).run()
    assert len(items) == 5
    assert (summary.succeeded, summary.failures) == (1, {"InvalidInput": 4})
    assert len(fake_llm.requests) == 1


def test_expect_takes_a_field_or_a_sandboxed_expression() -> None:
    by_field = Expectation.parse("label")
    assert by_field.judge({"label": "pos"}, {"label": "pos", "confidence": 1}) is True
    assert by_field.judge({"label": "pos"}, {"label": "neg"}) is False
    assert by_field.judge({}, {"label": "neg"}) is None
    by_expression = Expectation.parse("output.label == input.gold and output.confidence > 0.5")
    assert by_expression.judge({"gold": "pos"}, {"label": "pos", "confidence": 0.9}) is True
    assert by_expression.judge({"gold": "pos"}, {"label": "pos", "confidence": 0.1}) is False
    with pytest.raises(ValueError, match="may read only input and output"):
        Expectation.parse("secret == 1")
    with pytest.raises(ValueError, match="--expect"):
        Expectation.parse("__import__('os')")


def test_the_results_file_is_rewritten_in_input_order_and_keeps_only_done_items(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results.jsonl"
    with ResultsFile(path) as results:
        results.write(ItemResult(index=2, key="c", status="succeeded", output={"x": 1}))
        results.write(ItemResult(index=0, key="a", status="failed", error={"type": "ParseFailure"}))
        results.write(ItemResult(index=1, key="b", status="cancelled"))
        assert list(done_items(path)) == [2, 0]  # appended as they end
    assert list(done_items(path)) == [0, 2]
    assert not path.with_name("results.jsonl.tmp").exists()


def test_stratum_batch_writes_results_and_a_json_summary(
    tmp_path: Path, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    script_faults(fake_llm)
    plan = write_plan(tmp_path)
    items = write_items(tmp_path, 20)
    out, summary_file, store = tmp_path / "results.jsonl", tmp_path / "summary.json", tmp_path / "runs.db"
    options = ["--model", MODEL, "--api-base", fake_llm.url, "--store", str(store)]
    options += ["--price", f"{MODEL}={PRICE[0]},{PRICE[1]}"]
    arguments = ["batch", str(plan), "triage", "--input", str(items), "--output", str(out), "--expect", "label"]
    code = main([*arguments, "--summary", str(summary_file), "--concurrency", "3", *options])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary == json.loads(summary_file.read_text(encoding="utf-8"))
    assert (summary["succeeded"], summary["failed"], summary["correct"], summary["judged"]) == (16, 4, 14, 20)
    assert summary["failures"] == {"ParseFailure": 2, "PostconditionFailed": 2}
    results = done_items(out)
    assert list(results) == list(range(20))
    assert results[5]["error"]["type"] == "ParseFailure" and results[0]["output"]["label"] == "pos"
    assert "20/20 done" in captured.err

    assert (
        main(["runs", "--batch", summary["batch_id"], "--format", "json", "--limit", "100", "--store", str(store)]) == 0
    )
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 20 and {run["attributes"]["batch"]["id"] for run in listed} == {summary["batch_id"]}


async def test_stratum_batch_from_python_yields_each_result_and_a_summary(tmp_path: Path, fake_llm: FakeLLM) -> None:
    import stratum

    script_faults(fake_llm)
    inputs = [{"text": f"item {i}", "label": "pos" if i % 2 == 0 else "neg"} for i in range(12)]
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        results = stratum.batch(
            write_plan(tmp_path), "triage", inputs, engine=make_engine(fake_llm, store), expect="label", concurrency=3
        )
        seen = [result async for result in results]
    assert sorted(result.index for result in seen) == list(range(12))
    assert results.summary is not None
    assert (results.summary.succeeded, results.summary.failed, results.summary.correct) == (10, 2, 9)
    assert next(r for r in seen if r.index == 0).output == {"label": "pos", "confidence": 0.9}
