"""One output strategy per provider, the schema in the field each server honours, and fallback when refused."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from stratum_core.engine import Engine, EngineConfig
from stratum_core.errors import ConfigurationError, LLMError
from stratum_core.llm import LiteLLMClient, LLMRequest
from stratum_core.llm._local import LITELLM_MODEL, LOCAL_OUTPUT_PROFILE, LocalModelClient
from stratum_core.llm._models_file import load_models_file, parse_models
from stratum_core.llm._structured import (
    JSON_OBJECT_INSTRUCTION,
    Capabilities,
    OutputProfile,
    is_strategy_rejection,
    output_profile,
    strategy_arguments,
)
from stratum_core.plan import load_plan_text
from stratum_core.store import SQLiteRunStore
from stratum_core.testing import FakeLLM, Fault

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["pos", "neg"]}, "score": {"type": "integer", "minimum": 3}},
    "required": ["label", "score"],
    "additionalProperties": False,
}
NONE = Capabilities(response_schema=False, json_mode=False)
BOTH = Capabilities(response_schema=True, json_mode=True)
JSON_ONLY = Capabilities(response_schema=False, json_mode=True)
ALL = ("json_schema", "json_object", "text")


def request_to(fake: FakeLLM, model: str) -> LLMRequest:
    return LLMRequest(
        model=model,
        messages=({"role": "user", "content": "Classify: I loved it"},),
        schema=SCHEMA,
        api_base=fake.url,
        api_key="sk-test",
    )


def rejects_json_schema(message: str) -> tuple[Any, Fault]:
    """A rule for a server that refuses any request constraining decoding to a JSON schema."""

    def constrained(body: dict[str, Any]) -> bool:
        response_format = body.get("response_format") or {}
        return response_format.get("type") == "json_schema" or any(
            key in body for key in ("json_schema", "structured_outputs", "guided_json")
        )

    return constrained, Fault("bad_request", message=message)


def answers_in_json_mode(fake: FakeLLM) -> None:
    """A model that follows the schema in the prompt when asked for JSON mode (the fake does not read prompts)."""
    fake.add_rule(lambda body: body.get("response_format") == {"type": "json_object"}, {"label": "neg", "score": 4})


@pytest.fixture
def dialect_fake(request: pytest.FixtureRequest) -> Any:
    with FakeLLM(model_name="served", dialect=request.param) as fake:
        yield fake


# -- which strategies, for which provider ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "api_base", "capabilities", "strategies", "field"),
    [
        ("hosted_vllm/Qwen2.5-7B", "http://gpu:8000/v1", NONE, ALL, "structured_outputs"),
        ("ollama_chat/llama3.2", "http://127.0.0.1:11434", NONE, ALL, "response_format"),
        ("openai/any-model", "http://127.0.0.1:8080/v1", NONE, ALL, "response_format"),
        ("gpt-4o-mini", None, BOTH, ALL, "response_format"),
        ("some/json-mode-only", None, JSON_ONLY, ("json_object", "text"), "response_format"),
        ("some/plain-chat", None, NONE, ("text",), "response_format"),
    ],
)
def test_each_provider_gets_its_strategy_chain_and_schema_field(
    model: str, api_base: str | None, capabilities: Capabilities, strategies: tuple[str, ...], field: str
) -> None:
    profile = output_profile(model, api_base=api_base, capabilities=capabilities)

    assert (profile.strategies, profile.schema_field) == (strategies, field)


def test_a_configured_profile_wins_over_the_table_and_a_preference_cuts_the_chain() -> None:
    configured = OutputProfile(strategies=("json_schema", "text"), schema_field="guided_json")

    profile = output_profile("hosted_vllm/old", api_base="http://x/v1", capabilities=NONE, configured=configured)

    assert profile is configured
    assert profile.starting_at("json_object").strategies == ("text",)
    assert profile.starting_at("auto") is profile


@pytest.mark.parametrize(
    ("field", "expected_extra"),
    [
        ("json_schema", {"extra_body": {"json_schema": SCHEMA}}),
        ("structured_outputs", {"extra_body": {"structured_outputs": {"json": SCHEMA}}}),
        ("guided_json", {"extra_body": {"guided_json": SCHEMA}}),
    ],
)
def test_a_json_schema_request_puts_the_schema_in_the_servers_own_field(field: Any, expected_extra: Any) -> None:
    messages = [{"role": "user", "content": "hi"}]

    extra, sent = strategy_arguments("json_schema", schema=SCHEMA, name="out", schema_field=field, messages=messages)

    assert extra == expected_extra
    assert sent == messages  # a constrained answer needs no schema text in the prompt


def test_json_mode_and_text_carry_the_schema_in_the_prompt() -> None:
    messages = [{"role": "user", "content": "hi"}]

    json_mode, json_messages = strategy_arguments(
        "json_object", schema=SCHEMA, name="out", schema_field="response_format", messages=messages
    )
    text, text_messages = strategy_arguments(
        "text", schema=SCHEMA, name="out", schema_field="response_format", messages=messages
    )

    assert json_mode["response_format"] == {"type": "json_object"}
    assert text == {}
    for sent in (json_messages, text_messages):
        assert sent[0]["role"] == "system"
        assert JSON_OBJECT_INSTRUCTION in sent[0]["content"]


@pytest.mark.parametrize(
    ("status", "detail", "rejected"),
    [
        (400, "response_format type json_schema is not supported by this model", True),
        (400, "Invalid schema for response_format 'out': 'minimum' is not permitted", True),
        (400, "failed to parse grammar: grammar too large", True),
        (500, "llguidance: grammar compilation failed", True),
        (422, "structured_outputs.json: unsupported keyword 'patternProperties'", True),
        (400, "guided_json: the provided JSON schema contains features not supported by xgrammar", True),
        (400, "structured_outputs is not supported for this model", True),
        (400, "'response_format' of type 'json_object' is not supported with this model", True),
        (400, "This model's maximum context length is 2048 tokens", False),
        (401, "Incorrect API key provided (schema)", False),
        (500, "The server had an error", False),
        # other schemas and formats are not the structured output: falling back would hide the real error
        (400, "Invalid schema for function 'lookup': 'additionalProperties' must be false", False),
        (400, "Request body does not match the schema: messages[0].content must be a string", False),
        (422, "Unsupported format for image input: image/tiff is not supported", False),
        (400, "tools[0].function.parameters: schema is invalid", False),
    ],
)
def test_a_refused_strategy_is_told_apart_from_other_failures(status: int, detail: str, rejected: bool) -> None:
    assert is_strategy_rejection(status, detail) is rejected


# -- over real HTTP ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect_fake", ["vllm"], indirect=True)
async def test_a_vllm_server_gets_the_schema_as_structured_outputs_and_answers_within_it(
    dialect_fake: FakeLLM,
) -> None:
    client = LiteLLMClient(backoff_base=0.01)

    response = await client.complete(request_to(dialect_fake, "hosted_vllm/served"))

    body = dialect_fake.requests[-1]
    assert body["structured_outputs"] == {"json": SCHEMA}
    assert "response_format" not in body
    assert response.structured_output == "json_schema"
    jsonschema.validate(json.loads(response.content), SCHEMA)  # the fake honoured the field, as vLLM does


@pytest.mark.parametrize("dialect_fake", ["vllm"], indirect=True)
async def test_an_older_vllm_is_configured_to_take_guided_json(dialect_fake: FakeLLM, tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  hosted_vllm/served:\n    schema_field: guided_json\n", encoding="utf-8")
    client = LiteLLMClient(output_profiles=load_models_file(models))

    response = await client.complete(request_to(dialect_fake, "hosted_vllm/served"))

    assert dialect_fake.requests[-1]["guided_json"] == SCHEMA
    jsonschema.validate(json.loads(response.content), SCHEMA)


@pytest.mark.parametrize("dialect_fake", ["llamacpp"], indirect=True)
async def test_a_llama_cpp_server_gets_the_schema_as_its_json_schema_field(dialect_fake: FakeLLM) -> None:
    profile = OutputProfile(strategies=("json_schema", "json_object", "text"), schema_field="json_schema")
    client = LiteLLMClient(output_profiles={"openai/served": profile})

    response = await client.complete(request_to(dialect_fake, "openai/served"))

    assert dialect_fake.requests[-1]["json_schema"] == SCHEMA
    assert response.structured_output == "json_schema"
    jsonschema.validate(json.loads(response.content), SCHEMA)


@pytest.mark.parametrize("dialect_fake", ["llamacpp"], indirect=True)
async def test_a_refused_schema_falls_back_to_json_mode_for_that_call_and_is_remembered(
    dialect_fake: FakeLLM,
) -> None:
    dialect_fake.add_rule(*rejects_json_schema("response_format type json_schema is not supported"))
    answers_in_json_mode(dialect_fake)
    client = LiteLLMClient(backoff_base=0.01)

    first = await client.complete(request_to(dialect_fake, "openai/served"))
    second = await client.complete(request_to(dialect_fake, "openai/served"))

    assert [r.get("response_format", {}).get("type") for r in dialect_fake.requests] == [
        "json_schema",
        "json_object",
        "json_object",  # the second call does not ask again for what was refused
    ]
    assert first.structured_output == second.structured_output == "json_object"
    assert first.strategy_fallbacks == (
        "json_schema: 400 bad request: response_format type json_schema is not supported",
    )
    assert "refused earlier" in second.strategy_fallbacks[0]
    assert JSON_OBJECT_INSTRUCTION in dialect_fake.requests[1]["messages"][0]["content"]  # the schema, in the prompt


async def test_when_every_strategy_is_refused_the_error_names_the_last_refusal(fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(lambda body: True, Fault("bad_request", message="grammar too large for this server"))
    client = LiteLLMClient(backoff_base=0.01)

    with pytest.raises(LLMError, match="grammar too large") as caught:
        await client.complete(request_to(fake_llm, "openai/fake-llm"))

    assert len(fake_llm.requests) == 3  # json_schema, json_object, text: each tried once, none retried
    assert "response_format" not in fake_llm.requests[-1]
    assert caught.value.attempts == 3


def test_the_embedded_model_decodes_under_the_schema_through_llama_cpps_field() -> None:
    client = LocalModelClient()

    profile = client._transport.profile_for(LITELLM_MODEL, api_base="http://127.0.0.1:1/v1")

    assert profile == LOCAL_OUTPUT_PROFILE
    assert (profile.strategies[0], profile.schema_field) == ("json_schema", "json_schema")


# -- in a run: the trace says which strategy answered -----------------------------------------------------------------

PLAN = """
version: "1"
contracts:
  Verdict: {label: {type: string, enum: [pos, neg]}, score: {type: integer, minimum: 3}}
functions:
  judge:
    mode: infer
    intent: Judge the text.
    input: {text: {type: string}}
    output: Verdict
flows:
  main:
    input: {text: {type: string}}
    steps: [{id: judge, function: judge, inputs: {text: $.input.text}}]
"""


@pytest.mark.parametrize("dialect_fake", ["vllm"], indirect=True)
async def test_a_run_on_a_server_that_refuses_schemas_succeeds_and_its_trace_records_the_fallback(
    dialect_fake: FakeLLM, tmp_path: Path
) -> None:
    dialect_fake.add_rule(*rejects_json_schema("structured_outputs: unsupported JSON schema keyword 'enum'"))
    answers_in_json_mode(dialect_fake)
    store = SQLiteRunStore(tmp_path / "runs.db")
    engine = Engine(
        store=store,
        config=EngineConfig(model="hosted_vllm/served", api_base=dialect_fake.url, api_key="sk-test"),
    )

    result = await engine.run(load_plan_text(PLAN), "main", {"text": "great"})

    assert result.status == "succeeded"
    trace = store.get_trace(result.run_id)
    assert trace is not None
    (attempt,) = trace.attempts
    assert attempt.output_strategy == "json_object"
    assert attempt.strategy_fallbacks == [
        "json_schema: 400 bad request: structured_outputs: unsupported JSON schema keyword 'enum'"
    ]
    assert trace.to_json_dict()["steps"][0]["attempts"][0]["otel"]["stratum.output_strategy"] == "json_object"
    store.close()


# -- the models file --------------------------------------------------------------------------------------------------


def test_the_models_file_defaults_every_key() -> None:
    profiles = parse_models({"models": {"hosted_vllm/m": None, "openai/n": {"output": "text"}}}).profiles

    assert profiles["hosted_vllm/m"].strategies == ("json_schema", "json_object", "text")
    assert profiles["hosted_vllm/m"].schema_field == "response_format"
    assert profiles["openai/n"].strategies == ("text",)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"model": {}}, "models.yaml: expected a mapping with one key, 'models'"),
        (
            {"models": {"m": {"outputs": []}}},
            "models.yaml: models.m: unknown key 'outputs' (known: output, schema_field, price)",
        ),
        (
            {"models": {"m": {"output": ["json"]}}},
            "models.yaml: models.m.output: expected a non-empty list of json_schema, json_object, text, got ['json']",
        ),
        (
            {"models": {"m": {"output": ["text", "text"]}}},
            "models.yaml: models.m.output: a strategy is listed twice: ['text', 'text']",
        ),
        (
            {"models": {"m": {"schema_field": "grammar"}}},
            "models.yaml: models.m.schema_field: expected one of response_format, json_schema, structured_outputs, "
            "guided_json, got 'grammar'",
        ),
        (
            {"models": {"m": {"price": 0.5}}},
            "models.yaml: models.m.price: expected [IN, OUT], US dollars per million input and output tokens "
            "(numbers >= 0), got 0.5",
        ),
        (
            {"models": {"m": {"price": [1, -2]}}},
            "models.yaml: models.m.price: expected [IN, OUT], US dollars per million input and output tokens "
            "(numbers >= 0), got [1, -2]",
        ),
    ],
)
def test_a_bad_models_file_names_the_key_and_what_is_wrong(document: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_models(document, source="models.yaml")

    assert str(caught.value) == message


def test_the_engine_reads_the_models_file_from_the_environment(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  hosted_vllm/m: {schema_field: guided_json}\n", encoding="utf-8")

    config = EngineConfig.from_env({"STRATUM_MODELS": str(models)})

    assert config.output_profiles["hosted_vllm/m"].schema_field == "guided_json"


def test_a_models_file_price_is_the_lowest_layer_of_one_price_table(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        "  hosted_vllm/a: {price: [1, 2]}\n"  # a price only: Stratum still picks the output strategy
        "  hosted_vllm/b: {price: [3, 4], schema_field: guided_json}\n"
        "  hosted_vllm/c: {price: [5, 6]}\n",
        encoding="utf-8",
    )
    env = {"STRATUM_MODELS": str(models), "STRATUM_PRICES": "hosted_vllm/b=30,40;hosted_vllm/c=50,60"}

    config = EngineConfig.from_env(env, prices={"hosted_vllm/c": (500.0, 600.0)})

    # --price over STRATUM_PRICES over the models file, one model at a time
    assert config.prices == {
        "hosted_vllm/a": (1.0, 2.0),
        "hosted_vllm/b": (30.0, 40.0),
        "hosted_vllm/c": (500.0, 600.0),
    }
    assert set(config.output_profiles) == {"hosted_vllm/b"}
    # `--models FILE` wins over $STRATUM_MODELS
    other = tmp_path / "other.yaml"
    other.write_text("models:\n  hosted_vllm/a: {price: [7, 8]}\n", encoding="utf-8")
    assert EngineConfig.from_env(env, models_file=other).prices["hosted_vllm/a"] == (7.0, 8.0)


def test_the_models_file_in_the_docs_loads_as_it_says(tmp_path: Path) -> None:
    doc = Path(__file__).parents[3] / "docs" / "self-hosted-models.md"
    (block,) = re.findall(r"^```yaml\n(.*?)^```$", doc.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    models = tmp_path / "models.yaml"
    models.write_text(block, encoding="utf-8")

    profiles = load_models_file(models)

    assert profiles["hosted_vllm/Qwen/Qwen2.5-7B-Instruct"].schema_field == "guided_json"
    assert profiles["openai/qwen2.5-7b-instruct-q4"].schema_field == "json_schema"
    assert profiles["openai/some-gateway-model"].strategies == ("json_object", "text")


@pytest.mark.parametrize("dialect_fake", ["llamacpp"], indirect=True)
async def test_a_bound_the_grammar_let_through_is_still_caught_and_retried_with_the_violation(
    dialect_fake: FakeLLM, tmp_path: Path
) -> None:
    dialect_fake.enqueue({"label": "pos", "score": 1})  # fits the grammar's shape, breaks `minimum: 3`
    profile = OutputProfile(strategies=("json_schema", "json_object", "text"), schema_field="json_schema")
    engine = Engine(
        llm=LiteLLMClient(output_profiles={"openai/served": profile}),
        config=EngineConfig(model="openai/served", api_base=dialect_fake.url, api_key="sk-test"),
    )

    result = await engine.run(load_plan_text(PLAN), "main", {"text": "great"})

    assert result.status == "succeeded"
    assert result.output == {"label": "pos", "score": 3}  # the second answer, generated within the schema
    retry = dialect_fake.requests[1]
    assert retry["json_schema"] == dialect_fake.requests[0]["json_schema"]  # still constrained on the retry
    assert "- schema: result.score: 1 is less than the minimum of 3" in retry["messages"][-1]["content"]
