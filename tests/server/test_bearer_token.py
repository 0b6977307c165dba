"""The 401 a wrong, missing or malformed bearer token gets says which of the three it is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server._transport import BearerToken


async def refused(authorization: bytes | None) -> tuple[int, dict[str, Any], str]:
    """Call the middleware with this Authorization header; the status, JSON body and WWW-Authenticate it answers."""
    sent: list[dict[str, Any]] = []
    reached: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    headers = [(b"authorization", authorization)] if authorization is not None else []
    await BearerToken(app, "s3cret")({"type": "http", "headers": headers}, receive, send)
    assert not reached
    start, body = sent
    challenge = dict(start["headers"])[b"www-authenticate"].decode()
    return start["status"], json.loads(body["body"]), challenge


@pytest.mark.parametrize(
    ("header", "error", "says"),
    [
        (None, "invalid_request", "a bearer token is required"),
        (b"Basic czNjcmV0", "invalid_request", "must be 'Bearer <token>'"),
        (b"Bearer wrong", "invalid_token", "the bearer token is wrong"),
    ],
    ids=["missing", "not-bearer", "wrong"],
)
async def test_a_refused_request_is_told_what_is_wrong_with_its_token(
    header: bytes | None, error: str, says: str
) -> None:
    status, body, challenge = await refused(header)
    assert status == 401
    assert body["error"] == error and says in body["error_description"]
    assert challenge.startswith('Bearer realm="stratum"') and f'error="{error}"' in challenge


async def test_the_right_token_reaches_the_server() -> None:
    reached: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope)

    async def nothing(*args: Any) -> Any:
        return None

    await BearerToken(app, "s3cret")(
        {"type": "http", "headers": [(b"authorization", b"Bearer s3cret")]}, nothing, nothing
    )
    assert len(reached) == 1
