"""The Stratum MCP server: every flow of every plan a typed tool, people asked through elicitation, runs as resources.

`build_server(ServerConfig(...))` gives a low-level MCP `Server`; `serve_stdio` / `serve_http` run it.
"""

from server._app import RESUME_TOOL, StratumServer, build_server
from server._config import ServerConfig
from server._transport import serve_http, serve_stdio

__all__ = ["RESUME_TOOL", "ServerConfig", "StratumServer", "build_server", "serve_http", "serve_stdio"]
