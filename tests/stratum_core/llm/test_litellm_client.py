from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest

import stratum_core.llm
from stratum_core.errors import BudgetExceeded, LLMError
from stratum_core.llm import LiteLLMClient, LLMRequest, register_model
from stratum_core.llm._litellm import _retry_after, _supports_response_schema, load_litellm
from stratum_core.llm._structured import (
    JSON_OBJECT_INSTRUCTION,
    is_strict,
    json_schema_format,
    with_schema_instruction,
)
from stratum_core.testing import FakeLLM, Fault, Reply
from stratum_core.testing._fake_llm import BROKEN_JSON
from tests.fixtures.timing import baseline, beyond

# The tree whose stratum_core is under test (not resolved: it may be a checkout of symlinks).
REPO = Path(stratum_core.llm.__file__).parents[2]

STRICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["pos", "neg"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["label", "confidence"],
    "additionalProperties": False,
}


def make_request(fake: FakeLLM, *, model: str | None = None, **overrides: Any) -> LLMRequest:
    fields: dict[str, Any] = {
        "model": model or fake.model,
        "messages": ({"role": "user", "content": "Classify: I loved it"},),
        "schema": STRICT_SCHEMA,
        "api_base": fake.url,
        "api_key": "sk-test",
        **overrides,
    }
    return LLMRequest(**fields)


def test_public_names_are_pinned() -> None:
    assert stratum_core.llm.__all__ == [
        "LLMClient",
        "LLMRequest",
        "LLMResponse",
        "LiteLLMClient",
        "LocalModel",
        "LocalModelClient",
        "default_client",
        "default_model",
        "import_in_background",
        "register_model",
    ]


def test_importing_the_llm_package_does_not_import_litellm() -> None:
    code = "import sys, stratum_core.llm, stratum_core.testing; print('litellm' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"


# -- request shape ----------------------------------------------------------------------------------------------------


async def test_schema_is_forwarded_as_a_strict_json_schema_response_format(
    fake_llm: FakeLLM, client: LiteLLMClient
) -> None:
    response = await client.complete(make_request(fake_llm, schema_name="sentiment"))

    sent = fake_llm.requests[-1]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "sentiment", "schema": STRICT_SCHEMA, "strict": True},
    }
    assert response.structured_output == "json_schema"
    jsonschema.validate(json.loads(response.content), STRICT_SCHEMA)


async def test_schema_that_strict_mode_would_reject_is_sent_with_strict_off(
    fake_llm: FakeLLM, client: LiteLLMClient
) -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]}

    await client.complete(make_request(fake_llm, schema=loose))

    assert fake_llm.requests[-1]["response_format"]["json_schema"]["strict"] is False


async def test_free_text_request_sends_no_response_format(fake_llm: FakeLLM, client: LiteLLMClient) -> None:
    fake_llm.enqueue("Just words.")

    response = await client.complete(make_request(fake_llm, schema=None))

    assert "response_format" not in fake_llm.requests[-1]
    assert (response.content, response.structured_output) == ("Just words.", "none")


async def test_sampling_options_and_messages_reach_the_server(fake_llm: FakeLLM, client: LiteLLMClient) -> None:
    messages = ({"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"})

    await client.complete(make_request(fake_llm, messages=messages, temperature=0.0, max_tokens=64, seed=7))

    sent = fake_llm.requests[-1]
    assert (sent["model"], sent["temperature"], sent["max_tokens"], sent["seed"]) == ("fake-llm", 0.0, 64, 7)
    assert sent["messages"] == list(messages)


async def test_json_object_mode_sends_json_mode_and_the_schema_in_a_system_message(fake_llm: FakeLLM) -> None:
    client = LiteLLMClient(structured_output="json_object")
    fake_llm.enqueue({"label": "pos", "confidence": 0.9})

    response = await client.complete(make_request(fake_llm))

    sent = fake_llm.requests[-1]
    assert sent["response_format"] == {"type": "json_object"}
    system = sent["messages"][0]
    assert system["role"] == "system"
    assert JSON_OBJECT_INSTRUCTION in system["content"]
    assert json.dumps(STRICT_SCHEMA, indent=2, sort_keys=True) in system["content"]
    assert sent["messages"][1:] == [{"role": "user", "content": "Classify: I loved it"}]
    assert response.structured_output == "json_object"


async def test_a_request_to_a_local_server_without_a_key_still_goes_through(
    fake_llm: FakeLLM, client: LiteLLMClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    response = await client.complete(make_request(fake_llm, api_key=None))

    assert response.transport_attempts == 1


async def test_a_missing_api_key_fails_at_once_without_retries(
    client: LiteLLMClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    request = LLMRequest(model="openai/gpt-4o-mini", messages=({"role": "user", "content": "Hi"},), schema=None)

    with pytest.raises(LLMError) as caught:
        await client.complete(request)

    assert caught.value.attempts == 1
    assert "no API key" in caught.value.message


async def test_broken_json_is_returned_as_content_not_retried(fake_llm: FakeLLM, client: LiteLLMClient) -> None:
    fake_llm.enqueue(Fault("broken_json"))

    response = await client.complete(make_request(fake_llm))

    assert (response.content, response.transport_attempts) == (BROKEN_JSON, 1)


# -- usage and cost ---------------------------------------------------------------------------------------------------


async def test_tokens_come_from_usage_and_cost_from_the_registered_price(
    fake_llm: FakeLLM, client: LiteLLMClient
) -> None:
    register_model("openai/fake-priced", input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    fake_llm.enqueue(Reply(json={"label": "pos", "confidence": 1}, prompt_tokens=100, completion_tokens=50))

    response = await client.complete(make_request(fake_llm, model="openai/fake-priced"))

    assert (response.tokens_in, response.tokens_out) == (100, 50)
    assert response.cost_usd == pytest.approx(100 * 1e-6 + 50 * 2e-6)


async def test_cost_is_unknown_for_a_model_without_a_price(fake_llm: FakeLLM, client: LiteLLMClient) -> None:
    fake_llm.enqueue(Reply(prompt_tokens=10, completion_tokens=5))

    response = await client.complete(make_request(fake_llm, model="openai/fake-unpriced-model"))

    assert response.cost_usd is None
    assert (response.tokens_in, response.tokens_out) == (10, 5)


# -- transport faults -------------------------------------------------------------------------------------------------


async def test_rate_limit_is_retried_after_the_servers_retry_after(fake_llm: FakeLLM, client: LiteLLMClient) -> None:
    fake_llm.enqueue(Fault("rate_limit", retry_after=0.2), {"label": "neg", "confidence": 0.5})

    response = await client.complete(make_request(fake_llm))

    assert response.transport_attempts == 2
    # 0.2 s is the server's Retry-After; the client's own backoff would be at most 0.01 s.
    assert response.transport_errors == ("429 rate limited, retried after 0.20s",)
    assert json.loads(response.content) == {"label": "neg", "confidence": 0.5}
    assert len(fake_llm.requests) == 2


@pytest.mark.parametrize(
    ("fault", "summary"), [("server_error", "500 server error"), ("disconnect", "connection error")]
)
async def test_server_error_or_dropped_connection_then_success(
    fake_llm: FakeLLM, client: LiteLLMClient, fault: Any, summary: str
) -> None:
    fake_llm.enqueue(Fault(fault))

    response = await client.complete(make_request(fake_llm))

    assert response.transport_attempts == 2
    assert len(response.transport_errors) == 1
    assert response.transport_errors[0].startswith(f"{summary}, retried after ")
    assert len(fake_llm.requests) == 2


async def test_a_request_timeout_is_retried(fake_llm: FakeLLM, client: LiteLLMClient) -> None:
    # The timeout must cut the hang, not the retry's answer: it is sized from a request answered at once.
    timeout = round(beyond(await baseline(lambda: client.complete(make_request(fake_llm)))), 1)
    fake_llm.reset()
    client = LiteLLMClient(backoff_base=0.01, request_timeout=timeout)
    fake_llm.enqueue(Fault("hang"))

    response = await client.complete(make_request(fake_llm))

    assert response.transport_attempts == 2
    assert response.transport_errors[0].startswith(f"timeout after {timeout:g}s, retried after ")


async def test_exhausted_retries_raise_llm_error_naming_model_and_attempts(fake_llm: FakeLLM) -> None:
    client = LiteLLMClient(max_transport_retries=2, backoff_base=0.01)
    fake_llm.enqueue(*[Fault("server_error")] * 3)

    with pytest.raises(LLMError) as caught:
        await client.complete(make_request(fake_llm))

    error = caught.value
    assert (error.model, error.attempts) == (fake_llm.model, 3)
    assert "'openai/fake-llm' failed after 3 attempts; last error: 500 server error" in error.message
    assert error.details() == {"model": "openai/fake-llm", "transport_attempts": 3}
    assert len(fake_llm.requests) == 3


async def test_bad_request_raises_llm_error_without_retrying(fake_llm: FakeLLM, client: LiteLLMClient) -> None:
    fake_llm.enqueue(Fault("bad_request"))

    with pytest.raises(LLMError) as caught:
        await client.complete(make_request(fake_llm))

    assert caught.value.attempts == 1
    assert "400 bad request" in caught.value.message
    assert "Invalid request (scripted)" in caught.value.message
    assert len(fake_llm.requests) == 1


async def test_a_hanging_call_is_cancelled_by_the_callers_deadline(fake_llm: FakeLLM, client: LiteLLMClient) -> None:
    fake_llm.enqueue(Fault("hang"))

    with pytest.raises(TimeoutError):
        with anyio.fail_after(60) as deadline:
            async with anyio.create_task_group() as group:
                group.start_soon(client.complete, make_request(fake_llm))
                assert await anyio.to_thread.run_sync(lambda: fake_llm.wait_for_requests(1, timeout=60))
                deadline.deadline = anyio.current_time()  # the deadline passes while the call hangs

    assert len(fake_llm.requests) == 1
    assert await anyio.to_thread.run_sync(lambda: fake_llm.wait_for_idle(timeout=5))  # the connection was closed


async def test_retry_after_past_the_deadline_raises_budget_exceeded_instead_of_sleeping(
    fake_llm: FakeLLM, client: LiteLLMClient
) -> None:
    fake_llm.enqueue(Fault("rate_limit", retry_after=30))

    # Sleeping 30 s would end in fail_after's TimeoutError, not BudgetExceeded.
    with anyio.fail_after(5):
        with pytest.raises(BudgetExceeded) as caught:
            await client.complete(make_request(fake_llm))

    error = caught.value
    assert error.dimension == "ms"
    assert error.used > error.limit
    assert "429 rate limited; waiting 30.00s to retry would pass the deadline" in error.message
    assert error.__cause__ is not None  # the 429 it gave up on


# -- pieces -----------------------------------------------------------------------------------------------------------


def test_litellm_knows_which_models_support_response_schemas() -> None:
    litellm = load_litellm()

    assert _supports_response_schema(litellm, "gpt-4o-mini") is True
    assert _supports_response_schema(litellm, "openai/some-unknown-local-model") is False


@pytest.mark.parametrize(
    ("schema", "strict"),
    [
        (STRICT_SCHEMA, True),
        ({**STRICT_SCHEMA, "additionalProperties": True}, False),
        ({**STRICT_SCHEMA, "required": ["label"]}, False),
        (
            {
                "type": "object",
                "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}}},
                "required": ["items"],
                "additionalProperties": False,
                "$defs": {"item": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}},
            },
            False,
        ),
    ],
)
def test_strict_is_only_claimed_for_closed_fully_required_schemas(schema: dict[str, Any], strict: bool) -> None:
    assert is_strict(schema) is strict


@pytest.mark.parametrize(
    ("name", "sent"), [("Sentiment", "Sentiment"), ("my.contract v2", "my_contract_v2"), ("", "output")]
)
def test_schema_name_is_made_acceptable_to_openai(name: str, sent: str) -> None:
    assert json_schema_format(STRICT_SCHEMA, name)["json_schema"]["name"] == sent


def test_json_mode_instruction_joins_a_leading_system_message() -> None:
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]

    out = with_schema_instruction(messages, {"type": "object"})

    assert len(out) == 2
    assert str(out[0]["content"]).startswith(f"Be terse.\n\n{JSON_OBJECT_INSTRUCTION}")
    assert messages[0]["content"] == "Be terse."  # the caller's messages are left alone


class _Response:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class _Error(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        self.response = _Response(headers)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after-ms": "150"}, 0.15),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: retry now
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_seconds_milliseconds_or_as_a_date(
    headers: dict[str, str], expected: float | None
) -> None:
    assert _retry_after(_Error(headers)) == expected


def test_client_options_are_checked() -> None:
    with pytest.raises(ValueError, match="request_timeout"):
        LiteLLMClient(request_timeout=0)


async def test_the_lean_path_honours_http_proxy_and_no_proxy(
    fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratum_core.llm import _openai_http

    with socket.socket() as closed:  # a port nothing listens on: a proxy there refuses every call
        closed.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setattr(_openai_http, "_proxies", {})
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(LLMError, match=r"ConnectionFailed|Cannot connect"):
        await LiteLLMClient(max_transport_retries=0).complete(make_request(fake_llm))
    assert fake_llm.requests == []  # the call went to the proxy, not to the server

    monkeypatch.setattr(_openai_http, "_proxies", {})
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    response = await LiteLLMClient(max_transport_retries=0).complete(make_request(fake_llm))
    assert response.transport_attempts == 1 and len(fake_llm.requests) == 1
