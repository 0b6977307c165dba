"""Runs belong to whoever started them: over HTTP, one token's identity cannot see or answer another's runs.

`stratum serve --http --tokens FILE` in a subprocess, with the SDK client: alice's paused run reads to bob exactly
as a run that does not exist, through every way a run id reaches the server; an operator sees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated
from server_helpers import TEST_PLANS, HttpServer, serve_command, server_env, text_of
from tasks_client import TasksExtension, cancel_task, get_task, update_task

from server import RESUME_TOOL
from stratum_core.store import SQLiteRunStore

pytestmark = pytest.mark.slow

TOKENS = "alice-token-0123456789 alice\nbob-token-0123456789 bob\nroot-token-0123456789 root operator\n"
MISSING = "0" * 32  # a run id nobody has


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, Path]]:
    folder = tmp_path_factory.mktemp("owners")
    (folder / "tokens").write_text(TOKENS, encoding="utf-8")
    store = folder / "runs.db"
    server = HttpServer(serve_command(TEST_PLANS, store, "--tokens", str(folder / "tokens")), server_env())
    yield server, store
    server.stop()


def scrub(text: str, *ids: str) -> str:
    """`text` with the given ids replaced by one placeholder, to compare two answers about two ids."""
    for run_id in ids:
        text = text.replace(run_id, "<id>")
    return text


async def paused_run_of(client: Client) -> tuple[str, str]:
    """Start `approve_text` (it pauses for a person: the client shows no form); its run id and review id."""
    result = await client.call_tool("approve_text", {"text": "mine"})
    assert result.meta is not None and result.meta["stratum/status"] == "paused", text_of(result)
    return str(result.meta["stratum/run_id"]), str(result.meta["stratum/review_id"])


async def error_of(call: Any) -> str:
    """The message of a protocol error the awaitable raises."""
    with pytest.raises(MCPError) as raised:
        await call
    return str(raised.value)


async def test_another_identitys_run_reads_exactly_as_a_missing_run(served: tuple[HttpServer, Path]) -> None:
    server, _ = served
    async with server.client("legacy", token="alice-token-0123456789") as alice:
        run_id, review_id = await paused_run_of(alice)
        assert f"stratum://runs/{run_id}" in {str(r.uri) for r in (await alice.list_resources()).resources}
        assert (await alice.read_resource(f"stratum://runs/{run_id}")).contents
    async with server.client("legacy", token="bob-token-0123456789") as bob:
        listed = {str(resource.uri) for resource in (await bob.list_resources()).resources}
        assert f"stratum://runs/{run_id}" not in listed
        index = (await bob.read_resource("stratum://runs")).contents[0]
        assert isinstance(index, types.TextResourceContents) and run_id not in index.text
        for uri in ("stratum://runs/{}", "stratum://runs/{}/timeline.svg"):
            theirs = await error_of(bob.read_resource(uri.format(run_id)))
            missing = await error_of(bob.read_resource(uri.format(MISSING)))
            assert scrub(theirs, run_id, MISSING) == scrub(missing, run_id, MISSING)
        for tool in ("stratum_status", "stratum_await", "stratum_cancel"):
            theirs_result = await bob.call_tool(tool, {"run_id": run_id})
            missing_result = await bob.call_tool(tool, {"run_id": MISSING})
            assert theirs_result.is_error and missing_result.is_error
            assert scrub(text_of(theirs_result), run_id, MISSING) == scrub(text_of(missing_result), run_id, MISSING)
        answered = await bob.call_tool(RESUME_TOOL, {"review_id": review_id, "answer": {"approved": True}})
        unknown = await bob.call_tool(RESUME_TOOL, {"review_id": MISSING, "answer": {"approved": True}})
        assert answered.is_error and scrub(text_of(answered), review_id, MISSING) == scrub(
            text_of(unknown), review_id, MISSING
        )
        budget = await bob.call_tool(RESUME_TOOL, {"run_id": run_id, "budget": {"usd": 1}})
        assert budget.is_error and "No run with id" in text_of(budget)
        reported = await bob.call_tool("stratum_step_done", {"run_id": run_id, "step_id": "ask", "output": {}})
        assert reported.is_error and "No run with id" in text_of(reported)
        for prompt, argument, value in (("review_run", "run_id", run_id), ("answer_review", "review_id", review_id)):
            theirs = await error_of(bob.get_prompt(prompt, {argument: value}))
            missing = await error_of(bob.get_prompt(prompt, {argument: MISSING}))
            assert scrub(theirs, value, MISSING) == scrub(missing, value, MISSING)
        ref = types.ResourceTemplateReference(type="ref/resource", uri="stratum://runs/{run_id}")
        completed = await bob.complete(ref, {"name": "run_id", "value": ""})
        assert run_id not in completed.completion.values
        pending = await bob.complete(
            types.PromptReference(type="ref/prompt", name="answer_review"), {"name": "review_id", "value": ""}
        )
        assert review_id not in pending.completion.values
    async with server.client("legacy", token="alice-token-0123456789") as alice:
        status = await alice.call_tool("stratum_status", {"run_id": run_id})
        assert status.structured_content is not None and status.structured_content["status"] == "paused"
        done = await alice.call_tool(RESUME_TOOL, {"review_id": review_id, "answer": {"approved": True}})
        assert done.structured_content is not None and done.structured_content["status"] == "succeeded"


async def test_tasks_of_another_identity_are_not_found(served: tuple[HttpServer, Path]) -> None:
    server, _ = served
    async with server.client("legacy", token="alice-token-0123456789") as alice:
        run_id, _ = await paused_run_of(alice)
    async with server.client("auto", token="bob-token-0123456789", extensions=[TasksExtension()]) as bob:
        for request in (get_task(bob, run_id), cancel_task(bob, run_id), update_task(bob, run_id, {})):
            assert "Task not found" in await error_of(request)
        assert "Task not found" in await error_of(get_task(bob, MISSING))
    async with server.client("auto", token="alice-token-0123456789", extensions=[TasksExtension()]) as alice:
        task = await get_task(alice, run_id)
        assert task["taskId"] == run_id and task["status"] == "input_required"


async def test_an_operator_sees_and_answers_every_run_and_runs_record_their_owner(
    served: tuple[HttpServer, Path],
) -> None:
    server, store = served
    async with server.client("legacy", token="alice-token-0123456789") as alice:
        run_id, review_id = await paused_run_of(alice)
    async with server.client("legacy", token="root-token-0123456789") as root:
        listed = {str(resource.uri) for resource in (await root.list_resources()).resources}
        assert f"stratum://runs/{run_id}" in listed
        done = await root.call_tool(RESUME_TOOL, {"review_id": review_id, "answer": {"approved": False}})
        assert done.structured_content is not None and done.structured_content["status"] == "succeeded"
    with SQLiteRunStore(store) as runs:
        run = runs.get_run(run_id)
        review = runs.get_review(review_id)
    assert run is not None and run.owner == "alice"
    assert review is not None and (review.answered_by, review.channel) == ("agent", RESUME_TOOL)


async def test_a_listener_hears_about_its_own_runs_only(served: tuple[HttpServer, Path]) -> None:
    server, _ = served
    async with server.client("legacy", token="alice-token-0123456789") as alice:
        theirs, their_review = await paused_run_of(alice)
    async with server.client("legacy", token="bob-token-0123456789") as bob:
        mine, my_review = await paused_run_of(bob)
    their_uri, my_uri = f"stratum://runs/{theirs}", f"stratum://runs/{mine}"
    async with (
        server.client("auto", token="bob-token-0123456789") as bob,
        server.client("legacy", token="alice-token-0123456789") as alice,
        bob.listen(resource_subscriptions=[their_uri, my_uri]) as updates,
    ):
        done = await alice.call_tool(RESUME_TOOL, {"review_id": their_review, "answer": {"approved": True}})
        assert done.structured_content is not None and done.structured_content["status"] == "succeeded"
        await bob.call_tool(RESUME_TOOL, {"review_id": my_review, "answer": {"approved": True}})
        with anyio.fail_after(60):  # a guard against a hang, not a measure
            first = await updates.__anext__()
    assert first == ResourceUpdated(uri=my_uri)  # alice's run moved first, and bob heard nothing of it
