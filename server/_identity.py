"""Who is calling: the identity a request's bearer token maps to (HTTP), or the one local user (stdio).

Over HTTP every request carries a bearer token; the token table maps each known token to an identity (a name, and
whether it is an operator). Several tokens may name one identity. The `BearerToken` middleware puts the identity in
the ASGI scope, where request handlers find it (`identity_of`). On stdio (and in-process clients) there is one user,
who owns every run.

The tokens file has one token a line: `TOKEN NAME`, or `TOKEN NAME operator`; `#` starts a comment.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "IDENTITY_SCOPE_KEY",
    "LOCAL_USER",
    "TOKEN_IDENTITY",
    "Identity",
    "TokenTable",
    "generate_token",
    "identity_of",
    "is_loopback",
]

IDENTITY_SCOPE_KEY = "stratum.identity"
"""The ASGI scope key under which the bearer middleware leaves the caller's `Identity`."""


@dataclass(frozen=True)
class Identity:
    """A caller: runs it starts are recorded as its own (`name`); an operator sees and answers every run."""

    name: str
    operator: bool = False


LOCAL_USER = Identity("local", operator=True)
"""The one user of a stdio server (or an in-process client): owns every run."""
TOKEN_IDENTITY = Identity("operator", operator=True)
"""Who `--token` (or a generated token) names: the server's own user, an operator."""
_UNIDENTIFIED = Identity("unidentified")  # an HTTP request that reached the app without the bearer middleware


class TokenTable:
    """Known bearer tokens and the identity each names; lookups compare in constant time."""

    def __init__(self, entries: Mapping[str, Identity]) -> None:
        if not entries:
            raise ValueError("a token table needs at least one token")
        self._entries = [(token.encode(), identity) for token, identity in entries.items()]

    @classmethod
    def single(cls, token: str, identity: Identity = TOKEN_IDENTITY) -> TokenTable:
        """One token, naming `identity` (by default the server's own user, an operator)."""
        return cls({token: identity})

    @classmethod
    def parse(cls, text: str, *, source: str = "tokens") -> dict[str, Identity]:
        """The entries of a tokens file's text; ValueError names the line of a malformed or repeated token."""
        entries: dict[str, Identity] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            where = f"{source}:{number}"
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "operator"):
                raise ValueError(f"{where}: expected 'TOKEN NAME' or 'TOKEN NAME operator'")
            token, name = parts[0], parts[1]
            if token in entries:
                raise ValueError(f"{where}: this token is listed twice")
            entries[token] = Identity(name, operator=len(parts) == 3)
        if not entries:
            raise ValueError(f"{source}: no token in the file")
        return entries

    @classmethod
    def configured(cls, *, token: str | None, tokens_file: Path | None) -> TokenTable | None:
        """The table `--token` and `--tokens FILE` make together, or None when neither is given.

        ValueError (naming the file) when the file cannot be read or is malformed.
        """
        entries: dict[str, Identity] = {}
        if tokens_file is not None:
            try:
                text = tokens_file.read_text(encoding="utf-8")
            except OSError as e:
                raise ValueError(f"cannot read the tokens file {tokens_file}: {e.strerror or e}") from e
            entries.update(cls.parse(text, source=str(tokens_file)))
        if token:
            entries[token] = TOKEN_IDENTITY
        return cls(entries) if entries else None

    @property
    def identities(self) -> Iterable[Identity]:
        """Every identity a token names."""
        return (identity for _, identity in self._entries)

    def identify(self, token: bytes) -> Identity | None:
        """The identity `token` names, or None; every known token is compared, in constant time each."""
        found: Identity | None = None
        for known, identity in self._entries:
            if hmac.compare_digest(token, known):
                found = identity
        return found


def generate_token() -> str:
    """A fresh random token (256 bits, URL-safe), for a server started without one."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def identity_of(request: Any) -> Identity:
    """The identity of the request a handler serves: the HTTP request's (set by the middleware), else the local user.

    `request` is the transport's request (`ServerRequestContext.request`): a Starlette request over HTTP, None on
    stdio and in-process.
    """
    if request is None:
        return LOCAL_USER
    scope = getattr(request, "scope", None)
    identity = scope.get(IDENTITY_SCOPE_KEY) if isinstance(scope, Mapping) else None
    return identity if isinstance(identity, Identity) else _UNIDENTIFIED
