"""Budgets through the server: prices from its configuration, unpriced models refused, resume with a larger budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from server_helpers import make_server, text_of

from server import RESUME_TOOL
from stratum_core.testing import FakeLLM, Reply
from tests.fixtures.budget_plans import twice

PLAN = twice("{usd: 0.0015}", topic_input=True, output=True)


@pytest.fixture
def plans(tmp_path: Path) -> Path:
    folder = tmp_path / "plans"
    folder.mkdir()
    (folder / "twice.stratum.yaml").write_text(PLAN, encoding="utf-8")
    return folder


async def test_an_unpriced_model_is_refused_before_any_request(plans: Path, fake_llm: FakeLLM) -> None:
    fake_llm.reset()
    server = make_server(plans, model="openai/in-house-model", api_base=fake_llm.url)
    try:
        async with Client(server, mode="legacy") as client:
            result = await client.call_tool("twice", {"topic": "tea"})
    finally:
        server.close()
    assert result.is_error
    assert "BudgetExceeded" in text_of(result) and "has no known price" in text_of(result)
    assert fake_llm.requests == []


async def test_a_run_stopped_on_its_budget_is_resumed_with_a_larger_one(plans: Path, fake_llm: FakeLLM) -> None:
    fake_llm.reset()
    fake_llm.add_rule(lambda body: True, Reply(json={"text": "ok"}, prompt_tokens=1000, completion_tokens=400))
    # $1 / $1 per million tokens: the first call costs $0.0014, and the second cannot fit in what is left
    server = make_server(
        plans, model="openai/in-house-model", api_base=fake_llm.url, prices={"openai/in-house-model": (1.0, 1.0)}
    )
    try:
        async with Client(server, mode="legacy") as client:
            stopped = await client.call_tool("twice", {"topic": "tea"})
            assert stopped.is_error and "BudgetExceeded" in text_of(stopped), text_of(stopped)
            assert stopped.meta is not None
            run_id = stopped.meta["stratum/run_id"]

            finished = await client.call_tool(RESUME_TOOL, {"run_id": run_id, "budget": {"usd": 0.01}})
            again = await client.call_tool(RESUME_TOOL, {"run_id": run_id, "budget": {"usd": 0.02}})
            by_id = await client.call_tool(RESUME_TOOL, {"run_id": run_id})
            missing = await client.call_tool(RESUME_TOOL, {})
    finally:
        server.close()
    assert not finished.is_error, text_of(finished)
    assert finished.structured_content is not None
    assert finished.structured_content["output"] == {"text": "ok"}
    assert len(fake_llm.requests) == 2  # `first` ran once: it is not run again
    assert again.is_error and "only a paused run or one that stopped on its budget" in text_of(again)
    assert by_id.structured_content == finished.structured_content  # a finished run answers its outcome
    assert missing.is_error and "review_id: required field is missing (or pass run_id" in text_of(missing)
