"""Helpers for the server tests (imported by test modules; pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp.types as types

from server import ServerConfig, StratumServer, build_server

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
        return types.ElicitResult(action=action)  # type: ignore[arg-type]

    return callback
