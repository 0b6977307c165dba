"""Helpers for the server tests (imported by test modules; pytest puts this folder on sys.path)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import mcp.types as types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from server import ServerConfig, StratumServer, build_server
from server._serve_command import READY_PREFIX, TOKEN_PREFIX
from stratum_core.testing import FakeLLM

HERE = Path(__file__).parent
TEST_PLANS = HERE / "plans"
REPO_PLANS = HERE.parent.parent / "plans"
MODES = ["legacy", "auto"]


def make_server(plans: Path = TEST_PLANS, *, store: Path | None = None, **config: Any) -> StratumServer:
    """A server on `plans`, with runs in memory unless `store` names a file; no hot reload unless asked."""
    config.setdefault("poll_interval", 0)
    return build_server(ServerConfig(plans_dir=plans, store_path=store, **config))


def text_of(result: types.CallToolResult) -> str:
    """The first text block of a tool result."""
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def links_of(result: types.CallToolResult) -> list[str]:
    """The URIs of the resource links in a tool result."""
    return [str(block.uri) for block in result.content if isinstance(block, types.ResourceLink)]


def answer_with(action: str = "accept", content: dict[str, Any] | None = None, seen: list[Any] | None = None) -> Any:
    """An elicitation callback answering every question the same way (and recording what it was asked)."""

    async def callback(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        if seen is not None:
            seen.append(params)
        if action == "accept":
            return types.ElicitResult(action="accept", content=content or {"approved": True})
        return types.ElicitResult(action=action)

    return callback


INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
"""A raw `initialize` request, as a client without the SDK sends it first."""


def post_initialize(url: str, headers: dict[str, str]) -> int:
    """The HTTP status a raw `initialize` POST to `url` with these headers is answered."""
    request = urllib.request.Request(
        url,
        data=json.dumps(INITIALIZE).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


def serve_command(plans: Path, store: Path | str, *extra: str) -> list[str]:
    """`stratum serve` as a subprocess command line (the module form of the console script)."""
    return [sys.executable, "-m", "server.cli", "serve", "--plans", str(plans), "--store", str(store), *extra]


def server_env(llm: FakeLLM | None = None) -> dict[str, str]:
    """The environment of a spawned server: LiteLLM offline, the test LLM as its model."""
    env = {**os.environ, "LITELLM_OFFLINE_MODE": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    if llm is not None:
        env.update(STRATUM_MODEL=llm.model, STRATUM_API_BASE=llm.url, STRATUM_API_KEY="test")
    return env


class HttpServer:
    """`stratum serve --http 127.0.0.1:0` in a subprocess; `url` is known once it listens, and `token` with it.

    `token` is the one the server generated and printed, else None (the command line gave tokens).
    """

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [*command, "--http", "127.0.0.1:0"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.lines: list[str] = []
        self.token: str | None = None
        ready: queue.Queue[str] = queue.Queue()

        def drain() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.lines.append(line)
                if line.startswith(TOKEN_PREFIX):
                    self.token = line[len(TOKEN_PREFIX) :].strip()
                if line.startswith(READY_PREFIX):
                    ready.put(line[len(READY_PREFIX) :].strip())
            ready.put("")

        self._thread = threading.Thread(target=drain, daemon=True)
        self._thread.start()
        self.url = ready.get(timeout=30)
        if not self.url:
            raise RuntimeError("stratum serve --http exited:\n" + "".join(self.lines))

    def client(self, mode: str = "legacy", *, token: str | None = None, **kwargs: Any) -> _ClosingClient:
        """An SDK client of this server sending `token` (default: the generated one) as its bearer token."""
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token or self.token}"})
        return _ClosingClient(http, Client(streamable_http_client(self.url, http_client=http), mode=mode, **kwargs))

    def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        """Stop the server with `sig` (killed if it has not exited 10 s later); its exit code."""
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._thread.join(timeout=5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return self.process.returncode


def stdio_params(command: list[str], env: dict[str, str]) -> StdioServerParameters:
    """How the SDK client spawns `stratum serve` over stdio."""
    return StdioServerParameters(command=command[0], args=command[1:], env=env)


class _ClosingClient:
    """An SDK client that also closes the HTTP client it was given when it closes."""

    def __init__(self, http: Any, client: Client) -> None:
        self._http = http
        self._client = client

    async def __aenter__(self) -> Client:
        await self._http.__aenter__()
        return await self._client.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._client.__aexit__(*exc)
        finally:
            await self._http.__aexit__(*exc)
