"""HTTP always needs a bearer token: generated and printed when none is given, refused beyond loopback without one,
and a tokens file maps several tokens to identities."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest
from server_helpers import TEST_PLANS, HttpServer, post_initialize, serve_command, server_env

from server._identity import LOCAL_USER, TOKEN_IDENTITY, Identity, TokenTable, identity_of, is_loopback


def status_of(url: str, authorization: str | None) -> int:
    """The HTTP status of an `initialize` POST with this Authorization header."""
    return post_initialize(url, {"Authorization": authorization} if authorization is not None else {})


def test_a_tokens_file_maps_tokens_to_identities_some_of_them_operators() -> None:
    entries = TokenTable.parse("# who may call\nt-alice alice\nt-alice-2 alice  # rotated\nt-root root operator\n")
    assert entries == {
        "t-alice": Identity("alice"),
        "t-alice-2": Identity("alice"),
        "t-root": Identity("root", operator=True),
    }
    table = TokenTable(entries)
    assert table.identify(b"t-alice-2") == Identity("alice")
    assert table.identify(b"t-root") == Identity("root", operator=True)
    assert table.identify(b"t-nobody") is None and table.identify(b"") is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("only-a-token\n", "tokens:1: expected 'TOKEN NAME' or 'TOKEN NAME operator'"),
        ("t a\nt b\n", "tokens:2: this token is listed twice"),
        ("t a admin\n", "tokens:1: expected"),
        ("# nothing\n", "tokens: no token in the file"),
    ],
)
def test_a_malformed_tokens_file_is_refused_naming_the_line(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="^" + says.replace("(", r"\(")):
        TokenTable.parse(text)


def test_token_and_tokens_file_combine_and_the_single_token_is_the_servers_own_operator(tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text("t-alice alice\n", encoding="utf-8")
    table = TokenTable.configured(token="t-own", tokens_file=tmp_path / "tokens")
    assert table is not None
    assert table.identify(b"t-own") == TOKEN_IDENTITY and TOKEN_IDENTITY.operator
    assert table.identify(b"t-alice") == Identity("alice")
    assert TokenTable.configured(token=None, tokens_file=None) is None
    with pytest.raises(ValueError, match="cannot read the tokens file"):
        TokenTable.configured(token=None, tokens_file=tmp_path / "missing")


def test_stdio_and_in_process_callers_are_the_one_local_user_who_owns_every_run() -> None:
    assert identity_of(None) == LOCAL_USER and LOCAL_USER.operator


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_loopback_addresses_are_told_apart_from_the_rest(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.slow
async def test_http_without_a_token_generates_one_prints_it_with_the_url_and_requires_it() -> None:
    server = HttpServer(serve_command(TEST_PLANS, ":memory:"), server_env())
    try:
        assert server.token is not None and len(server.token) >= 32
        printed = "".join(server.lines)
        assert server.url in printed and f"Authorization: Bearer {server.token}" in printed
        assert await anyio.to_thread.run_sync(status_of, server.url, None) == 401
        assert await anyio.to_thread.run_sync(status_of, server.url, "Bearer wrong") == 401
        assert await anyio.to_thread.run_sync(status_of, server.url, f"Bearer {server.token}") == 200
        async with server.client("legacy") as client:
            result = await client.call_tool("echo", {"text": "hi"})
        assert result.structured_content == {"text": "hi", "length": 2}
    finally:
        server.stop()


@pytest.mark.slow
async def test_each_token_of_a_tokens_file_opens_the_server(tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text("t-alice-0123456789 alice\nt-root-0123456789 root operator\n", encoding="utf-8")
    env = {**server_env(), "STRATUM_TOKENS": str(tmp_path / "tokens")}  # the variable, as --tokens FILE
    server = HttpServer(serve_command(TEST_PLANS, ":memory:"), env)
    try:
        assert server.token is None  # configured: nothing generated, nothing printed
        for token in ("t-alice-0123456789", "t-root-0123456789"):
            assert await anyio.to_thread.run_sync(status_of, server.url, f"Bearer {token}") == 200
        assert await anyio.to_thread.run_sync(status_of, server.url, "Bearer t-bob") == 401
    finally:
        server.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]"])
def test_a_non_loopback_bind_without_a_configured_token_refuses_to_start(host: str) -> None:
    done = subprocess.run(
        [*serve_command(TEST_PLANS, ":memory:"), "--http", f"{host}:0"],
        capture_output=True,
        text=True,
        env={key: value for key, value in server_env().items() if key not in ("STRATUM_TOKEN", "STRATUM_TOKENS")},
        timeout=60,
    )
    assert done.returncode == 2
    assert "serving beyond this machine needs a configured token" in done.stderr
    assert "--token" in done.stderr and "--tokens FILE" in done.stderr
