"""The approval card (MCP Apps) in headless Chromium, behind a small host-bridge stub, against the real server."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
from mcp import Client
from server_helpers import HERE, make_server

from server._approval_card import APP_MIME_TYPE, CARD_URI
from stratum_core.testing import FakeLLM, Reply

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DRAFT = {"title": "Rain tomorrow", "words": 3}

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def dump(result: types.CallToolResult) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


async def test_the_card_shows_the_decision_and_answers_through_the_host_bridge(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    from playwright.async_api import async_playwright

    fake_llm.reset()
    fake_llm.add_rule("Draft a title", Reply(json=DRAFT))
    server = make_server(HERE / "long_plans", model=fake_llm.model, api_base=fake_llm.url, api_key="test", wait=60)
    async with Client(server, mode="legacy") as client:  # no elicitation: the run pauses for the card
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        card = (await client.read_resource(CARD_URI)).contents[0]
        paused = await client.call_tool("publish_after_review", {"text": "it will rain"})
        assert not paused.is_error and paused.structured_content is not None
        review_id = paused.structured_content["stratum_run"]["review"]["review_id"]

        async def host_call_tool(params: dict[str, Any]) -> dict[str, Any]:
            return dump(await client.call_tool(params["name"], params.get("arguments")))

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS
            )
            page = await browser.new_page()
            await page.expose_function("hostCallTool", host_call_tool)
            await page.goto((HERE / "card" / "host_stub.html").as_uri())
            await page.evaluate("([html, result]) => window.startCard(html, result)", [card.text, dump(paused)])
            view = page.frame_locator("#app")
            await view.locator("#question").wait_for()
            question = await view.locator("#question").text_content()
            fields = await view.locator("[data-field]").evaluate_all("nodes => nodes.map(n => n.dataset.field)")
            context = await view.locator("#context").text_content()
            await page.screenshot(path=str(tmp_path / "approval-card.png"))

            await view.locator("#field-priority").fill("9")
            await view.locator("#field-reason").fill("urgent")
            await view.locator("#submit").click()
            invalid_error = await view.locator("#error").text_content()
            invalid_field = await view.locator("[data-field=priority] .problem").text_content()
            calls_after_invalid = await page.evaluate("window.calls.length")
            await page.screenshot(path=str(tmp_path / "approval-card-invalid.png"))

            await view.locator("#field-approve").check()
            await view.locator("#field-priority").fill("4")
            await view.locator("#field-reason").fill("useful")
            await view.locator("#submit").click()
            await view.locator("#outcome").wait_for()
            outcome = await view.locator("#outcome").text_content()
            calls = await page.evaluate("window.calls")
            await page.screenshot(path=str(tmp_path / "approval-card-done.png"))
            await browser.close()
    review = server.store.get_review(review_id)
    server.close()

    assert tools["publish_after_review"].meta == {"ui": {"resourceUri": CARD_URI}}
    assert card.mime_type == APP_MIME_TYPE and isinstance(card, types.TextResourceContents)
    assert question == "Publish this draft?"
    assert fields == ["approve", "priority", "reason"]
    assert context is not None and "Rain tomorrow" in context
    assert (tmp_path / "approval-card.png").stat().st_size > 0
    assert invalid_error == "Please fix: priority must be at most 5" and invalid_field == "must be at most 5"
    assert calls_after_invalid == 0  # an invalid answer is never sent
    assert calls == [
        {
            "name": "stratum_card_answer",
            "arguments": {
                "review_id": review_id,
                "action": "accept",
                "answer": {"approve": True, "priority": 4, "reason": "useful"},
            },
        }
    ]
    assert outcome is not None and '"title": "Rain tomorrow"' in outcome and '"priority": 4' in outcome
    assert review is not None and review.value == {"approve": True, "priority": 4, "reason": "useful"}
    assert (review.answered_by, review.channel) == ("person", "approval_card")
