"""Running the server: stdio (what Claude Code spawns) or streamable HTTP on a local port.

HTTP binds 127.0.0.1 unless told otherwise, keeps the SDK's DNS-rebinding protection (Host and Origin must name
the bound host), and requires a bearer token on every request: each known token names an identity
(`_identity.py`), which owns the runs it starts. Nothing is ever written to stdout but the protocol: logs go to
stderr.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, BinaryIO

import anyio
from mcp.server.transport_security import TransportSecuritySettings

from server._app import StratumServer
from server._identity import IDENTITY_SCOPE_KEY, TokenTable
from server._limits import BodyLimit
from server._stdin import claimed_stdin
from server._stdio import stdio_streams, wire_writer

__all__ = ["BearerToken", "claim_stdout", "release_stdout", "serve_http", "serve_stdio", "transport_security"]

logger = logging.getLogger("stratum.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_LOCAL_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
_LOCAL_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


async def serve_stdio(server: StratumServer, *, wire: BinaryIO | None = None) -> None:
    """Serve one client over stdin/stdout until it closes stdin or the process is interrupted.

    Plans are watched meanwhile. Stdin is read by a daemon thread, so an interrupted server never waits for a line;
    a malformed line is answered with a JSON-RPC error (`_stdio.py`). `wire` is the protocol's own stdout when the
    caller already took it (`claim_stdout`); else it is claimed here, and given back at the end.
    """
    own = wire is None
    if wire is None:
        wire = claim_stdout()
    try:
        with claimed_stdin(max_line=server.config.max_message_bytes) as lines:
            async with (
                wire_writer(wire.fileno()) as stdout,
                server.running(),
                stdio_streams(lines, stdout) as (read_stream, write_stream),
            ):
                await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        if own:
            release_stdout(wire)


def claim_stdout() -> BinaryIO:
    """Keep stdout for the protocol alone: fd 1 goes to stderr, and the wire is a private copy of the old fd 1.

    Called before anything else can write (LiteLLM's import, a log handler bound to sys.stdout, print, C code), so
    nothing but JSON-RPC ever reaches the client, whatever LiteLLM's log level or environment.
    """
    sys.stdout.flush()
    wire = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    return wire


def release_stdout(wire: BinaryIO) -> None:
    """Undo `claim_stdout`: fd 1 is the protocol's stdout again, and the private copy is closed."""
    sys.stdout.flush()
    os.dup2(wire.fileno(), 1)
    wire.close()


def transport_security(host: str) -> TransportSecuritySettings:
    """DNS-rebinding protection: requests must name the bound host (and local names) in Host and Origin."""
    hosts, origins = list(_LOCAL_HOSTS), list(_LOCAL_ORIGINS)
    if host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        try:
            shown = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
        except ValueError:
            shown = host
        hosts.append(f"{shown}:*")
        origins += [f"http://{shown}:*", f"https://{shown}:*"]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


class BearerToken:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>` with a known token.

    The identity the token names goes into the scope (`IDENTITY_SCOPE_KEY`) for the request handlers. `tokens` is
    a token table, or one token (the server's own user).
    """

    def __init__(self, app: ASGIApp, tokens: TokenTable | str) -> None:
        self.app = app
        self._tokens = TokenTable.single(tokens) if isinstance(tokens, str) else tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http":
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            identity = self._tokens.identify(token.strip()) if scheme.lower() == b"bearer" else None
            if identity is None:
                error, description = _token_problem(given)
                body = json.dumps({"error": error, "error_description": description})
                challenge = f'Bearer realm="stratum", error="{error}", error_description="{description}"'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", challenge.encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body.encode()})
                return
            scope = {**scope, IDENTITY_SCOPE_KEY: identity}
        await self.app(scope, receive, send)


def _token_problem(given: bytes) -> tuple[str, str]:
    """The RFC 6750 error code and a plain description of what is wrong with the Authorization header."""
    if not given:
        return "invalid_request", "a bearer token is required (send the header 'Authorization: Bearer <token>')"
    scheme, _, token = given.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return "invalid_request", "the Authorization header must be 'Bearer <token>'"
    return "invalid_token", "the bearer token is wrong (it is not one the server was started with)"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve_http(
    server: StratumServer,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    tokens: TokenTable | str,
    on_ready: Callable[[str], None] | None = None,
    stop: anyio.Event | None = None,
) -> None:
    """Serve streamable HTTP at `http://host:port/mcp` until interrupted or `stop` is set.

    `on_ready` gets the URL once bound. Setting `stop` shuts down as Ctrl-C does: open requests end, then the app's
    lifespan closes.

    Every request must carry one of `tokens` (a table of tokens and the identities they name, or one token).
    Port 0 picks a free port; the URL passed to `on_ready` (and logged) names it.
    """
    import uvicorn

    app: ASGIApp = server.streamable_http_app(host=host, transport_security=transport_security(host))
    app = BodyLimit(app, server.config.max_message_bytes)
    app = BearerToken(app, tokens)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound_port}/mcp"
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False, ws="none")
    web = uvicorn.Server(config)
    try:
        async with server.running():
            # The socket listens already: a client connecting now waits in the backlog until uvicorn accepts it.
            logger.info("serving MCP over HTTP at %s", url)
            if on_ready is not None:
                on_ready(url)
            async with anyio.create_task_group() as group:
                if stop is not None:

                    async def shut_down_when_asked() -> None:
                        await stop.wait()
                        web.should_exit = True

                    group.start_soon(shut_down_when_asked)
                await web.serve(sockets=[sock])
                group.cancel_scope.cancel()
    finally:
        sock.close()
