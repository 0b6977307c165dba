"""Change notifications to every connected client, in both protocol eras.

Handshake-era connections (initialize, up to 2025-11-25) get `notifications/*` on their standalone channel; the hub
remembers them weakly as they send requests. 2026-07-28 clients have no standing channel: they open
`subscriptions/listen` streams, fed from the SDK's subscription bus. The hub publishes every event both ways.
It also keeps each handshake connection's `logging/setLevel` level and `resources/subscribe` URIs.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

import mcp.types as types
from mcp.server.connection import Connection
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp.types.version import MODERN_PROTOCOL_VERSIONS

__all__ = ["LOG_LEVELS", "Hub", "connection_of"]

logger = logging.getLogger("stratum.server")

LOG_LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
DEFAULT_LOG_LEVEL: types.LoggingLevel = "info"
RUNS_ANNOUNCE_INTERVAL = 1.0


def connection_of(session: ServerSession) -> Connection | None:
    """The connection a request's session belongs to.

    The SDK (2.3) gives request handlers a per-request `ServerSession` and keeps the `Connection` private; the
    connection is what outlives the request and carries the standalone channel.
    """
    connection = getattr(session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


class Hub:
    """Fan-out of tool/resource changes and per-connection settings."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._subscriptions: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()
        self._levels: weakref.WeakKeyDictionary[Connection, types.LoggingLevel] = weakref.WeakKeyDictionary()
        self._runs_announced = -RUNS_ANNOUNCE_INTERVAL

    def track(self, session: ServerSession, protocol_version: str) -> None:
        """Remember a handshake-era connection so later changes reach it."""
        if protocol_version in MODERN_PROTOCOL_VERSIONS:
            return
        connection = connection_of(session)
        if connection is not None:
            self._connections.add(connection)

    @property
    def connection_count(self) -> int:
        """How many handshake-era connections are remembered (closed ones drop out when collected)."""
        return len(self._connections)

    def subscribe(self, session: ServerSession, uri: str) -> None:
        """`resources/subscribe` from a handshake-era client."""
        connection = connection_of(session)
        if connection is not None:
            self._connections.add(connection)
            self._subscriptions.setdefault(connection, set()).add(uri)

    def unsubscribe(self, session: ServerSession, uri: str) -> None:
        """`resources/unsubscribe` from a handshake-era client."""
        connection = connection_of(session)
        if connection is not None:
            self._subscriptions.get(connection, set()).discard(uri)

    def set_log_level(self, session: ServerSession, level: types.LoggingLevel) -> None:
        """`logging/setLevel`: the least severe level this connection wants."""
        connection = connection_of(session)
        if connection is not None:
            self._levels[connection] = level

    def wants_log(self, session: ServerSession, level: types.LoggingLevel) -> bool:
        """Whether a log message at `level` should go to this request's client.

        2026-07-28 requests carry their own level (the SDK filters by it); handshake connections use setLevel's.
        """
        if session.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return True
        connection = connection_of(session)
        wanted = self._levels.get(connection, DEFAULT_LOG_LEVEL) if connection is not None else DEFAULT_LOG_LEVEL
        return LOG_LEVELS.index(level) >= LOG_LEVELS.index(wanted)

    async def _publish(self, event: ServerEvent) -> None:
        try:
            await self.bus.publish(event)
        except Exception:  # a notification is advisory: never fail the caller
            logger.exception("publishing %r failed", event)

    async def _each(self, method: str, *args: Any, only_uri: str | None = None) -> None:
        for connection in list(self._connections):
            if only_uri is not None and only_uri not in self._subscriptions.get(connection, ()):
                continue
            try:
                await getattr(connection, method)(*args)
            except Exception:
                logger.debug("%s to a closed connection dropped", method, exc_info=True)

    async def tools_changed(self) -> None:
        """Announce a changed tool list to every client."""
        await self._each("send_tool_list_changed")
        await self._publish(ToolsListChanged())

    async def prompts_changed(self) -> None:
        """Announce a changed prompt list (a prompt per flow) to every client."""
        await self._each("send_prompt_list_changed")
        await self._publish(PromptsListChanged())

    async def resources_changed(self) -> None:
        """Announce a changed resource list (new runs, changed plans) to every client."""
        await self._each("send_resource_list_changed")
        await self._publish(ResourcesListChanged())

    async def runs_changed(self) -> None:
        """A run was created: the resource list (recent runs) changed. Announced at most once per second."""
        now = time.monotonic()
        if now - self._runs_announced < RUNS_ANNOUNCE_INTERVAL:
            return
        self._runs_announced = now
        await self.resources_changed()

    async def resource_updated(self, uri: str) -> None:
        """Tell subscribers of `uri` that it changed."""
        await self._each("send_resource_updated", uri, only_uri=uri)
        await self._publish(ResourceUpdated(uri=uri))
