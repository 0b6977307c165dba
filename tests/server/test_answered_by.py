"""The trace says truthfully who answered a human step, and how; a step that needs a person refuses the agent.

The agent through `stratum_resume` is recorded as the agent; a person through the client's elicitation form, the
approval card's own (app-only) tool or `stratum review answer` as a person. Real SDK clients, a SQLite store.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client
from server_helpers import answer_with, make_server, text_of

from server import RESUME_TOOL
from server._approval_card import APPROVAL_CARD_CHANNEL, CARD_ANSWER_TOOL, CARD_URI
from server.cli import main
from stratum_core.store import SQLiteRunStore

PLAN = """\
version: "1"
contracts:
  Approval:
    approved: {type: boolean, description: Approve?}
functions:
  approve:
    mode: human
    question: Approve this text?
    input: {text: {type: string}}
    output: Approval
  sign_off:
    mode: human
    question: Sign this off?
    input: {text: {type: string}}
    output: Approval
    answered_by: person
flows:
  approve_text:
    input: {text: {type: string}}
    output: Approval
    steps:
      - {id: ask, function: approve, inputs: {text: $.input.text}}
  sign_text:
    input: {text: {type: string}}
    output: Approval
    steps:
      - {id: sign, function: sign_off, inputs: {text: $.input.text}}
"""


@pytest.fixture
def plans(tmp_path: Path) -> Path:
    folder = tmp_path / "plans"
    folder.mkdir()
    (folder / "people.stratum.yaml").write_text(PLAN, encoding="utf-8")
    return folder


def recorded(store: Path, review_id: str) -> tuple[str | None, str | None, str | None]:
    """(answered_by, channel, the step's answered_by attribute) as the store holds them."""
    with SQLiteRunStore(store) as runs:
        review = runs.get_review(review_id)
        assert review is not None
        steps = {step.step_id: step for step in runs.get_steps(review.run_id)}
    step = steps[review.step_id]
    return review.answered_by, review.channel, step.attributes.get("answered_by")  # type: ignore[return-value]


async def paused(client: Client, flow: str) -> tuple[str, str]:
    result = await client.call_tool(flow, {"text": "draft"})
    assert result.meta is not None and result.meta["stratum/status"] == "paused", text_of(result)
    return str(result.meta["stratum/run_id"]), str(result.meta["stratum/review_id"])


async def test_an_answer_through_stratum_resume_is_recorded_as_the_agents(plans: Path, tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    server = make_server(plans, store=store)
    async with Client(server, mode="legacy") as client:
        _, review_id = await paused(client, "approve_text")
        done = await client.call_tool(
            RESUME_TOOL, {"review_id": review_id, "answer": {"approved": True}, "reviewer": "Ada (a person)"}
        )
    server.close()
    assert done.structured_content is not None and done.structured_content["status"] == "succeeded"
    assert recorded(store, review_id) == ("agent", RESUME_TOOL, "agent")


async def test_an_answer_in_the_elicitation_form_is_recorded_as_a_persons(
    plans: Path, tmp_path: Path, mode: str
) -> None:
    store = tmp_path / "runs.db"
    server = make_server(plans, store=store)
    async with Client(server, mode=mode, elicitation_callback=answer_with("accept", {"approved": True})) as client:
        done = await client.call_tool("sign_text", {"text": "draft"})
    server.close()
    assert done.structured_content == {"approved": True}, text_of(done)
    with SQLiteRunStore(store) as runs:
        [review] = runs.list_reviews(status=None)
    assert recorded(store, review.review_id) == ("person", "elicitation", "person")


async def test_a_step_that_needs_a_person_refuses_stratum_resume_and_says_how_a_person_answers(
    plans: Path, tmp_path: Path
) -> None:
    store = tmp_path / "runs.db"
    server = make_server(plans, store=store)
    async with Client(server, mode="legacy") as client:
        run_id, review_id = await paused(client, "sign_text")
        refused = await client.call_tool(RESUME_TOOL, {"review_id": review_id, "answer": {"approved": True}})
        declined = await client.call_tool(RESUME_TOOL, {"review_id": review_id, "action": "decline"})
        status = await client.call_tool("stratum_status", {"run_id": run_id})
    server.close()
    assert refused.is_error and declined.is_error
    message = text_of(refused)
    assert "step 'sign'" in message and "answered_by: person" in message
    assert "stratum_await" in message and "approval card" in message
    assert f"stratum review answer {review_id}" in message
    assert status.structured_content is not None and status.structured_content["status"] == "paused"


async def test_the_approval_cards_app_only_tool_is_recorded_as_a_person_and_may_answer_a_persons_step(
    plans: Path, tmp_path: Path
) -> None:
    store = tmp_path / "runs.db"
    server = make_server(plans, store=store)
    async with Client(server, mode="legacy") as client:
        [card_tool] = [tool for tool in (await client.list_tools()).tools if tool.name == CARD_ANSWER_TOOL]
        _, review_id = await paused(client, "sign_text")
        done = await client.call_tool(CARD_ANSWER_TOOL, {"review_id": review_id, "answer": {"approved": True}})
    server.close()
    assert card_tool.meta == {"ui": {"resourceUri": CARD_URI, "visibility": ["app"]}}
    assert done.structured_content is not None and done.structured_content["status"] == "succeeded", text_of(done)
    assert recorded(store, review_id) == ("person", APPROVAL_CARD_CHANNEL, "person")


def test_an_answer_with_stratum_review_answer_is_recorded_as_a_persons(plans: Path, tmp_path: Path) -> None:
    store = tmp_path / "runs.db"

    async def pause() -> str:
        server = make_server(plans, store=store)
        try:
            async with Client(server, mode="legacy") as client:
                return (await paused(client, "sign_text"))[1]
        finally:
            server.close()

    review_id = anyio.run(pause)
    code = main(["review", "answer", review_id, "--value", '{"approved": true}', "--store", str(store)])
    assert code == 0
    assert recorded(store, review_id) == ("person", "cli", "person")
