"""`stratum serve --backend temporal`: a flow called over MCP runs as a Temporal workflow, and its human step is
answered through the client's elicitation form."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
from mcp import Client
from server_helpers import REPO_PLANS, make_server, text_of

from stratum_core.backends import TemporalSettings
from stratum_core.backends.temporal import TemporalEngine
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM, Fault
from tests.stratum_core.backends.temporal.conftest import (
    TEMPORAL_TEST_TIMEOUT,
    DevServer,
    connect_client,
    in_process_worker,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TEMPORAL_TEST_TIMEOUT, method="thread")]


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = DevServer(tmp_path_factory.mktemp("temporal") / "temporal.db")
    server.start()
    yield server
    server.stop()


async def test_a_flow_called_over_mcp_runs_on_temporal_and_asks_its_person_by_elicitation(
    dev_server: DevServer, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    fake_llm.add_rule("Classify the emotional tone", {"label": "negative", "confidence": 0.8, "reasoning": "it broke"})
    fake_llm.add_rule("Draft a short, helpful reply", {"body": "Sorry Grace, a new one is on its way.", "tone": "warm"})
    settings = TemporalSettings(address=dev_server.address, task_queue=f"mcp-{uuid.uuid4().hex[:8]}")
    store_path = tmp_path / "runs.db"
    server = make_server(
        REPO_PLANS,
        store=store_path,
        model=fake_llm.model,
        api_base=fake_llm.url,
        force_model=True,
        prices={fake_llm.model: (0.1, 0.2)},
        backend="temporal",
        temporal=settings,
    )
    assert isinstance(server.engine, TemporalEngine)
    asked: list[types.ElicitRequestParams] = []

    async def approve(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="accept", content={"decision": "send"})

    client = await connect_client(settings.address)
    with SQLiteRunStore(store_path) as worker_store:
        async with (
            in_process_worker(client, settings, worker_store, fake_llm),
            Client(server, elicitation_callback=approve) as mcp_client,
        ):
            text = "The charger I bought last week arrived broken and support never answered my mail."
            result = await mcp_client.call_tool(
                "triage", {"email": "grace@example.com", "text": text, "customer_note": ""}
            )
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None and result.structured_content["sent"] is True
        [question] = asked
        assert isinstance(question, types.ElicitRequestFormParams)
        (run,) = worker_store.list_runs().runs
        assert run.attributes["backend"]["name"] == "temporal"  # type: ignore[index,call-overload]
        (review,) = worker_store.list_reviews(status=None, run_id=run.run_id)
        assert (review.status, review.answered_by) == ("answered", "person")
    server.close()


async def test_stratum_cancel_cancels_the_runs_workflow_and_stops_its_model_call(
    dev_server: DevServer, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    import anyio

    from tests.server.test_long_runs import LONG_PLANS

    fake_llm.reset()  # the server tests' test LLM is the session's
    fake_llm.add_rule("Draft a title", Fault(kind="hang"))  # answered only when its client goes away
    settings = TemporalSettings(address=dev_server.address, task_queue=f"mcp-{uuid.uuid4().hex[:8]}")
    store_path = tmp_path / "runs.db"
    server = make_server(
        LONG_PLANS,
        store=store_path,
        model=fake_llm.model,
        api_base=fake_llm.url,
        api_key="test",
        force_model=True,
        wait=0.2,
        backend="temporal",
        temporal=settings,
    )
    client = await connect_client(settings.address)
    with SQLiteRunStore(store_path) as worker_store, anyio.fail_after(300):
        async with in_process_worker(client, settings, worker_store, fake_llm), Client(server) as mcp_client:
            started = await mcp_client.call_tool("summarize_long", {"text": "stop me"})
            assert not started.is_error, text_of(started)
            assert started.structured_content is not None
            run_id = started.structured_content["stratum_run"]["run_id"]
            while not fake_llm.in_flight:  # the draft step's model call is in flight
                await anyio.sleep(0.02)
            before = len(fake_llm.requests)
            cancelled = await mcp_client.call_tool("stratum_cancel", {"run_id": run_id})
            assert await anyio.to_thread.run_sync(lambda: fake_llm.wait_for_idle(timeout=300))
            requests = len(fake_llm.requests)
            fake_llm.reset()  # no hanging rule left for the session's other tests
        run = worker_store.get_run(run_id)
        trace = worker_store.get_trace(run_id)
    server.close()
    assert not cancelled.is_error and cancelled.structured_content is not None, text_of(cancelled)
    assert cancelled.structured_content["status"] == "cancelled"
    assert run is not None and run.status == "cancelled"
    assert trace is not None
    [attempt] = [a for a in trace.attempts if a.step_id == "draft"]
    assert attempt.error is not None and "cancelled while in flight" in attempt.error  # stopped, not answered
    assert requests == before == 1  # none after the cancel
    workflow_id = run.attributes["backend"]["workflow_id"]  # type: ignore[index,call-overload]
    description = await client.get_workflow_handle(workflow_id).describe()
    assert description.status is not None and description.status.name == "CANCELED"
