"""FakeAnthropic: the Anthropic Messages API, scripted, reached by LiteLLM's `anthropic/` provider over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from stratum_core.llm import LLMRequest
from stratum_core.llm._litellm import LiteLLMClient
from stratum_core.testing import FakeAnthropic, Fault, Reply

SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["good", "bad"]}, "n": {"type": "integer", "minimum": 2}},
    "required": ["label", "n"],
    "additionalProperties": False,
}


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def post(fake: FakeAnthropic, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{fake.url}/v1/messages", data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def request(fake: FakeAnthropic, text: str = "Rate this.") -> LLMRequest:
    messages = ({"role": "system", "content": "You rate things."}, {"role": "user", "content": text})
    return LLMRequest(model=fake.model, messages=messages, schema=SCHEMA, api_base=fake.url, api_key="test")


async def test_litellm_reaches_the_fake_through_its_anthropic_provider_with_the_schema_and_usage(
    fake: FakeAnthropic,
) -> None:
    fake.add_rule("You rate things.", Reply(json={"label": "good", "n": 3}, prompt_tokens=100, completion_tokens=20))
    response = await LiteLLMClient(max_transport_retries=0).complete(request(fake))
    assert json.loads(response.content) == {"label": "good", "n": 3}
    assert (response.tokens_in, response.tokens_out) == (100, 20)
    assert response.cost_usd is not None and response.cost_usd > 0  # claude-haiku-4-5 has a price in LiteLLM's map
    body = fake.requests[0]
    assert body["model"] == "claude-haiku-4-5"
    assert body["system"][0]["text"] == "You rate things."
    sent = body.get("output_config", {}).get("format") or body.get("output_format")
    assert sent["type"] == "json_schema" and sent["schema"]["required"] == ["label", "n"]


async def test_scripted_429_and_500_are_retried_by_the_client_and_counted(fake: FakeAnthropic) -> None:
    fake.enqueue(Fault("rate_limit", retry_after=0), Fault("server_error"), {"label": "bad", "n": 2})
    response = await LiteLLMClient(max_transport_retries=3, backoff_base=0.001).complete(request(fake))
    assert json.loads(response.content) == {"label": "bad", "n": 2}
    assert response.transport_attempts == 3
    assert len(fake.requests) == 3


def test_unscripted_requests_get_a_minimal_valid_instance_of_the_requested_schema(fake: FakeAnthropic) -> None:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    }
    status, payload = post(fake, body)
    assert status == 200
    assert payload["type"] == "message" and payload["stop_reason"] == "end_turn"
    assert json.loads(payload["content"][0]["text"]) == {"label": "good", "n": 2}
    assert payload["usage"]["input_tokens"] >= 1


def test_a_forced_tool_is_answered_with_a_tool_use_block(fake: FakeAnthropic) -> None:
    fake.enqueue({"label": "good", "n": 4})
    body = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": [{"name": "json_tool_call", "input_schema": SCHEMA}],
        "tool_choice": {"type": "tool", "name": "json_tool_call"},
    }
    status, payload = post(fake, body)
    assert status == 200
    assert payload["content"][0]["type"] == "tool_use"
    assert payload["content"][0]["input"] == {"label": "good", "n": 4}


def test_faults_use_the_anthropic_error_shape(fake: FakeAnthropic) -> None:
    fake.enqueue(Fault("rate_limit"), Fault("server_error"))
    body = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    assert post(fake, body) == (
        429,
        {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached (scripted)"}},
    )
    assert post(fake, body)[1]["error"]["type"] == "api_error"


def test_count_tokens_is_answered_without_taking_a_scripted_answer(fake: FakeAnthropic) -> None:
    fake.enqueue({"label": "good", "n": 2})
    body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x" * 40}]}
    request = urllib.request.Request(
        f"{fake.url}/v1/messages/count_tokens",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == {"input_tokens": 10}
    assert fake.requests == []
    assert post(fake, {**body, "max_tokens": 5})[1]["content"][0]["text"] == '{"label": "good", "n": 2}'
