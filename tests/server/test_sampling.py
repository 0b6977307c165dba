"""`--infer-via sampling`: infer steps ask the client's model through MCP sampling; other clients get the agent."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import mcp.types as types
import pytest
from agent_helpers import AGENT_PLANS, ScriptedAgent, meta_of, status_of, tasks_of
from mcp import Client
from server_helpers import make_server, text_of

from server import StratumServer
from server._sampling import SAMPLING_MODEL, CallerModel
from stratum_core.errors import ConfigurationError
from stratum_core.llm import LLMRequest
from stratum_core.llm._structured import JSON_OBJECT_INSTRUCTION
from stratum_core.testing import FakeLLM


class ClientModel:
    """A sampling callback that answers scripted texts and records what it was asked."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[types.CreateMessageRequestParams] = []

    async def __call__(self, context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.asked.append(params)
        return types.CreateMessageResult(
            role="assistant",
            model="client-model-1",
            content=types.TextContent(type="text", text=self.answers.pop(0)),
            _meta={"usage": {"input_tokens": 120, "output_tokens": 9}},
        )


@pytest.fixture
def sampling_server() -> Iterator[StratumServer]:
    server = make_server(AGENT_PLANS, infer_via="sampling")
    yield server
    server.close()


def trace_steps(server: StratumServer, run_id: str) -> dict[str, Any]:
    trace = server.resources.read(server.folder.catalog, f"stratum://runs/{run_id}").contents[0]
    assert isinstance(trace, types.TextResourceContents)
    return {step["step_id"]: step for step in json.loads(trace.text)["steps"]}


async def test_an_infer_step_asks_the_clients_model_and_a_schema_invalid_answer_is_retried(
    sampling_server: StratumServer,
) -> None:
    model = ClientModel('{"label": "great", "confidence": 0.9}', '```json\n{"label": "good", "confidence": 0.7}\n```')
    async with Client(sampling_server, mode="legacy", sampling_callback=model) as client:
        result = await client.call_tool("mood", {"text": "what a sunny day"})
    assert not result.is_error, text_of(result)
    assert result.structured_content == {"label": "good", "confidence": 0.7}
    first, second = model.asked
    assert first.system_prompt is not None
    schema = json.loads(first.system_prompt.split(JSON_OBJECT_INSTRUCTION)[1])  # the schema is in the prompt
    assert schema["properties"]["label"]["enum"] == ["good", "bad"]
    assert "Say whether the text is in a good or a bad mood." in first.system_prompt
    assert first.model_preferences is None  # no model configured: whatever the client uses
    user = second.messages[-1].content
    assert isinstance(user, types.TextContent) and "Your previous answer was rejected" in user.text
    assert 'schema: result.label: "great" is not one of ["good", "bad"]' in user.text
    mood = trace_steps(sampling_server, str(meta_of(result)["stratum/run_id"]))["mood"]
    assert mood["attributes"]["backend"] == "sampling"
    assert [(a["backend"], bool(a["violations"]), a["tokens_in"]) for a in mood["attempts"]] == [
        ("sampling", True, 120),
        ("sampling", False, 120),
    ]
    assert mood["attempts"][0]["model"] == SAMPLING_MODEL and mood["attempts"][0]["cost_usd"] is None


async def test_after_the_agent_reports_a_step_the_next_one_still_samples(sampling_server: StratumServer) -> None:
    model = ClientModel('{"label": "good", "confidence": 0.8}')
    async with Client(sampling_server, mode="legacy", sampling_callback=model) as client:
        agent = ScriptedAgent(client, {"explain": [{"value": "The weather is nice."}]})
        paused = await agent.call("explain_then_mood", {"text": "sunny"})
        last = await agent.follow(paused)
    assert agent.handed == [["explain"]]  # `executor: agent` stays the agent's, even when the client can sample
    assert last.structured_content == {"label": "good", "confidence": 0.8}
    [asked] = model.asked
    assert isinstance(asked.messages[0].content, types.TextContent)
    assert "The weather is nice." in asked.messages[0].content.text
    steps = trace_steps(sampling_server, str(meta_of(paused)["stratum/run_id"]))
    assert (steps["explain"]["attributes"]["backend"], steps["mood"]["attributes"]["backend"]) == ("agent", "sampling")


@pytest.mark.parametrize(("mode", "can_sample"), [("legacy", False), ("auto", True)], ids=["no-capability", "2026"])
async def test_a_client_that_cannot_sample_gets_the_step_as_an_agent_step(
    sampling_server: StratumServer, mode: str, can_sample: bool, caplog: pytest.LogCaptureFixture
) -> None:
    model = ClientModel()
    callback = {"sampling_callback": model} if can_sample else {}
    with caplog.at_level(logging.INFO, logger="stratum.server"):
        async with Client(sampling_server, mode=mode, **callback) as client:  # type: ignore[arg-type]
            agent = ScriptedAgent(client, {"mood": [{"label": "bad", "confidence": 0.6}]})
            paused = await agent.call("mood", {"text": "rain again"})
            last = await agent.follow(paused)
    assert status_of(paused) == "paused" and [task["step_id"] for task in tasks_of(paused)] == ["mood"]
    assert last.structured_content == {"label": "bad", "confidence": 0.6}
    assert model.asked == []
    assert any("infer steps go to the calling agent" in record.getMessage() for record in caplog.records)
    steps = trace_steps(sampling_server, str(meta_of(paused)["stratum/run_id"]))
    assert [a["backend"] for a in steps["mood"]["attempts"]] == ["agent"]


async def test_a_configured_model_is_passed_to_the_client_as_a_hint_and_never_called(fake_llm: FakeLLM) -> None:
    fake_llm.reset()
    server = make_server(AGENT_PLANS, infer_via="sampling", model=fake_llm.model, api_base=fake_llm.url)
    model = ClientModel('{"label": "good", "confidence": 1}')
    async with Client(server, mode="legacy", sampling_callback=model) as client:
        result = await client.call_tool("mood", {"text": "sunny"})
    server.close()
    assert result.structured_content == {"label": "good", "confidence": 1}
    hints = model.asked[0].model_preferences
    assert hints is not None and [hint.name for hint in hints.hints or []] == [fake_llm.model]
    assert fake_llm.requests == []


async def test_with_no_client_model_and_no_configured_one_the_error_says_what_to_do() -> None:
    request = LLMRequest(model=SAMPLING_MODEL, messages=({"role": "user", "content": "hi"},), schema=None)
    with pytest.raises(ConfigurationError, match=r"cannot sample.*--model"):
        await CallerModel().complete(request)
