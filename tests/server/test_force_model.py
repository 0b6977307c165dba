"""`stratum serve --force-model MODEL`: one model does every infer step, whatever model the plan pins."""

from __future__ import annotations

import sys
from pathlib import Path

from mcp import Client
from mcp.client.stdio import stdio_client
from server_helpers import server_env, stdio_params

from server._config import ServerConfig
from stratum_core.testing import FakeLLM

PLAN = """
version: "1"
contracts:
  Mood:
    label: {type: string, enum: [happy, sad]}
functions:
  mood:
    mode: infer
    intent: Say the mood of the text.
    input: {text: {type: string}}
    output: Mood
    model: anthropic/claude-3-5-haiku-latest
flows:
  mood:
    input: {text: {type: string}}
    output: Mood
    steps: [{id: mood, function: mood, inputs: {text: $.input.text}}]
"""


def test_the_force_model_variable_sets_the_model_and_forces_it() -> None:
    config = ServerConfig.from_env({"STRATUM_MODEL": "a/b", "STRATUM_FORCE_MODEL": "ollama/qwen3"})
    assert (config.model, config.force_model) == ("ollama/qwen3", True)
    assert ServerConfig.from_env({"STRATUM_MODEL": "a/b"}).force_model is False


async def test_a_served_plan_that_pins_a_model_runs_on_the_forced_one(tmp_path: Path, fake_llm: FakeLLM) -> None:
    (tmp_path / "mood.stratum.yaml").write_text(PLAN, encoding="utf-8")
    fake_llm.reset()
    fake_llm.enqueue({"label": "happy"})
    env = server_env()  # no STRATUM_MODEL: only the flag names a model
    env["STRATUM_API_KEY"] = "test"
    command = [
        str(Path(sys.executable).with_name("stratum")),
        "serve",
        "--plans", str(tmp_path),
        "--store", ":memory:",
        "--poll", "0",
        "--force-model", fake_llm.model,
        "--api-base", fake_llm.url,
    ]  # fmt: skip
    async with Client(stdio_client(stdio_params(command, env))) as client:
        result = await client.call_tool("mood", {"text": "sunny"})
    assert not result.is_error, result.content
    assert result.structured_content == {"label": "happy"}
    assert {request["model"] for request in fake_llm.requests} == {"fake-llm"}
