"""The Stratum MCP server: every flow of every plan a typed tool, people asked through elicitation, runs as resources.

`build_server(ServerConfig(...))` gives a low-level MCP `Server`; `serve_stdio` / `serve_http` run it.
The names load on first use, so the `stratum` command line (whose entry point lives in this package) imports the MCP
SDK only for the commands that serve.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server._app import RESUME_TOOL, StratumServer, build_server
    from server._config import ServerConfig
    from server._transport import serve_http, serve_stdio

__all__ = ["RESUME_TOOL", "ServerConfig", "StratumServer", "build_server", "serve_http", "serve_stdio"]

_WHERE = {
    "RESUME_TOOL": "server._app",
    "StratumServer": "server._app",
    "build_server": "server._app",
    "ServerConfig": "server._config",
    "serve_http": "server._transport",
    "serve_stdio": "server._transport",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'server' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
