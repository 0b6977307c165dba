from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from server_helpers import answer_with, make_server, text_of

from server import RESUME_TOOL, StratumServer


def review_of(server: StratumServer, run_id: str) -> Any:
    trace = server.store.get_trace(run_id)
    assert trace is not None
    [review] = trace.reviews
    return review


async def test_an_accepted_elicitation_becomes_the_steps_decision(server: StratumServer, mode: str) -> None:
    seen: list[Any] = []
    callback = answer_with("accept", {"approved": True, "note": "fine"}, seen)
    async with Client(server, mode=mode, elicitation_callback=callback) as client:
        result = await client.call_tool("approve_text", {"text": "ship it"})
    assert not result.is_error, text_of(result)
    assert result.structured_content == {"text": "ship it", "approved": True}
    [asked] = seen
    assert asked.message.startswith("Approve this text?") and "ship it" in asked.message
    assert asked.requested_schema["properties"]["approved"]["type"] == "boolean"
    assert result.meta is not None
    review = review_of(server, result.meta["stratum/run_id"])
    assert (review.status, review.action, review.value) == ("answered", "accept", {"approved": True, "note": "fine"})
    assert review.reviewer == "mcp:mcp"  # the SDK client's default name


@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_decline_and_cancel_stop_the_flow_and_are_recorded(server: StratumServer, mode: str, action: str) -> None:
    async with Client(server, mode=mode, elicitation_callback=answer_with(action)) as client:
        result = await client.call_tool("approve_text", {"text": "ship it"})
    assert result.is_error
    assert "HumanRejected" in text_of(result) and f'"action": "{action}"' in text_of(result)
    assert result.meta is not None
    run_id = result.meta["stratum/run_id"]
    assert review_of(server, run_id).action == action
    run = server.store.get_run(run_id)
    assert run is not None and run.status == "failed"


async def test_options_become_an_enum_and_a_primitive_decision_comes_back_as_the_value(
    server: StratumServer, mode: str
) -> None:
    seen: list[Any] = []
    async with Client(server, mode=mode, elicitation_callback=answer_with("accept", {"value": "green"}, seen)) as c:
        result = await c.call_tool("pick_color", {"text": "paint"})
    assert seen[0].requested_schema["properties"]["value"] == {"type": "string", "enum": ["red", "green"]}
    assert result.structured_content == {"result": "green"}


async def test_two_decisions_in_one_call_are_asked_one_after_the_other(server: StratumServer, mode: str) -> None:
    seen: list[Any] = []
    async with Client(server, mode=mode, elicitation_callback=answer_with("accept", None, seen)) as client:
        result = await client.call_tool("approve_twice", {"text": "twice"})
    assert len(seen) == 2
    assert result.structured_content == {"text": "twice", "approved": True}


async def test_an_answer_that_does_not_fit_the_form_is_asked_again(server: StratumServer, mode: str) -> None:
    answers = iter([{"approved": "yes please"}, {"approved": False}])
    messages: list[str] = []

    async def callback(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        messages.append(params.message)
        return types.ElicitResult(action="accept", content=next(answers))

    async with Client(server, mode=mode, elicitation_callback=callback) as client:
        result = await client.call_tool("approve_text", {"text": "hm"})
    assert result.structured_content == {"text": "hm", "approved": False}
    assert len(messages) == 2 and "not accepted" in messages[1] and "approved" in messages[1]


async def test_a_client_without_elicitation_gets_a_paused_result_and_stratum_resume_finishes_the_run(
    server: StratumServer, mode: str
) -> None:
    async with Client(server, mode=mode) as client:
        paused = await client.call_tool("approve_text", {"text": "later"})
        assert not paused.is_error and paused.meta is not None  # a pause is not a failure
        assert paused.meta["stratum/status"] == "paused"
        review_id = paused.meta["stratum/review_id"]
        assert "PAUSED" in text_of(paused) and review_id in text_of(paused) and RESUME_TOOL in text_of(paused)
        run = server.store.get_run(paused.meta["stratum/run_id"])
        assert run is not None and run.status == "paused"
        done = await client.call_tool(RESUME_TOOL, {"review_id": review_id, "answer": {"approved": True}})
        again = await client.call_tool(RESUME_TOOL, {"review_id": review_id, "answer": {"approved": False}})
    assert not done.is_error, text_of(done)
    assert done.structured_content == {
        "run_id": run.run_id,
        "flow": "approve_text",
        "status": "succeeded",
        "output": {"text": "later", "approved": True},
    }
    assert again.structured_content == done.structured_content  # answered once: the outcome is the run's


async def test_stratum_resume_can_decline(server: StratumServer) -> None:
    async with Client(server, mode="legacy") as client:
        paused = await client.call_tool("pick_color", {"text": "paint"})
        assert paused.meta is not None
        declined = await client.call_tool(
            RESUME_TOOL, {"review_id": paused.meta["stratum/review_id"], "action": "decline", "rationale": "no"}
        )
    assert declined.is_error and "HumanRejected" in text_of(declined)
    review = review_of(server, paused.meta["stratum/run_id"])
    assert (review.action, review.rationale) == ("decline", "no")


async def test_stratum_resume_takes_a_bare_value_for_a_primitive_decision(server: StratumServer) -> None:
    async with Client(server, mode="legacy") as client:
        paused = await client.call_tool("pick_color", {"text": "paint"})
        assert paused.meta is not None
        done = await client.call_tool(RESUME_TOOL, {"review_id": paused.meta["stratum/review_id"], "answer": "red"})
    assert done.structured_content is not None and done.structured_content["output"] == "red"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"review_id": "nope", "answer": {}}, "No review with id 'nope'"),
        ({"review_id": "{id}"}, "To accept, pass `answer`"),
        ({"review_id": "{id}", "answer": {"approved": "maybe"}}, "approved: 'maybe' is not of type 'boolean'"),
        ({"review_id": "{id}", "action": "shrug"}, "action: 'shrug' is not one of"),
        ({}, "review_id: required field is missing"),
    ],
    ids=["unknown", "no-answer", "bad-answer", "bad-action", "no-id"],
)
async def test_stratum_resume_explains_what_is_wrong(
    server: StratumServer, arguments: dict[str, Any], expected: str
) -> None:
    async with Client(server, mode="legacy") as client:
        paused = await client.call_tool("approve_text", {"text": "later"})
        assert paused.meta is not None
        review_id = paused.meta["stratum/review_id"]
        if arguments.get("review_id") == "{id}":
            arguments = {**arguments, "review_id": review_id}
        result = await client.call_tool(RESUME_TOOL, arguments)
    assert result.is_error and expected in text_of(result)
    run = server.store.get_run(paused.meta["stratum/run_id"])
    assert run is not None and run.status == "paused"


async def test_a_paused_run_survives_a_server_restart(tmp_path: Path, mode: str) -> None:
    store = tmp_path / "runs.db"
    first = make_server(store=store)
    async with Client(first, mode=mode) as client:
        paused = await client.call_tool("approve_text", {"text": "tomorrow"})
    first.close()
    assert paused.meta is not None
    second = make_server(store=store)
    async with Client(second, mode=mode) as client:
        done = await client.call_tool(
            RESUME_TOOL, {"review_id": paused.meta["stratum/review_id"], "answer": {"approved": True}}
        )
    second.close()
    assert done.structured_content is not None
    assert done.structured_content["output"] == {"text": "tomorrow", "approved": True}


async def _first_round(client: Client, name: str, arguments: dict[str, Any]) -> types.InputRequiredResult:
    first = await client.session.call_tool(name, arguments, allow_input_required=True)
    assert isinstance(first, types.InputRequiredResult)
    return first


async def test_2026_clients_get_input_required_with_a_sealed_state(server: StratumServer) -> None:
    async with Client(server, mode="auto", elicitation_callback=answer_with()) as client:
        first = await _first_round(client, "approve_text", {"text": "sealed"})
        assert first.request_state is not None
        assert "run_id" not in first.request_state  # sealed: the client cannot read it
        request = first.input_requests["review"] if first.input_requests else None
        assert isinstance(request, types.ElicitRequest)
        answer: dict[str, types.InputResponse] = {
            "review": types.ElicitResult(action="accept", content={"approved": True})
        }
        forged = first.request_state[:-4] + ("AAAA" if not first.request_state.endswith("AAAA") else "BBBB")
        with pytest.raises(MCPError) as caught:
            await client.session.call_tool(
                "approve_text", {"text": "sealed"}, input_responses=answer, request_state=forged
            )
        assert caught.value.error.message == "Invalid or expired requestState"
        with pytest.raises(MCPError):  # the state is bound to the call's arguments: no swapping into another call
            await client.session.call_tool(
                "approve_text", {"text": "other"}, input_responses=answer, request_state=first.request_state
            )
        done = await client.session.call_tool(
            "approve_text", {"text": "sealed"}, input_responses=answer, request_state=first.request_state
        )
    assert isinstance(done, types.CallToolResult)
    assert done.structured_content == {"text": "sealed", "approved": True}


async def test_a_2026_retry_without_an_answer_asks_again(server: StratumServer) -> None:
    async with Client(server, mode="auto", elicitation_callback=answer_with()) as client:
        first = await _first_round(client, "approve_text", {"text": "again"})
        second = await client.session.call_tool(
            "approve_text", {"text": "again"}, request_state=first.request_state, allow_input_required=True
        )
    assert isinstance(second, types.InputRequiredResult)
    assert second.input_requests is not None and "review" in second.input_requests


async def test_a_2026_answer_is_accepted_after_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    first = make_server(store=store)
    async with Client(first, mode="auto", elicitation_callback=answer_with()) as client:
        round_one = await _first_round(client, "approve_text", {"text": "restart"})
    first.close()
    second = make_server(store=store)
    approved: dict[str, types.InputResponse] = {
        "review": types.ElicitResult(action="accept", content={"approved": True})
    }
    async with Client(second, mode="auto") as client:
        done = await client.session.call_tool(
            "approve_text",
            {"text": "restart"},
            input_responses=approved,
            request_state=round_one.request_state,
        )
    second.close()
    assert isinstance(done, types.CallToolResult)
    assert done.structured_content == {"text": "restart", "approved": True}
    assert json.loads(text_of(done)) == done.structured_content
