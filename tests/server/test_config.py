from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import server
from server._config import DEFAULT_PLANS_DIR, DEFAULT_STORE_PATH, ServerConfig, parse_listen_address
from server._transport import transport_security
from server.cli import main


def test_the_public_api_is_pinned() -> None:
    assert server.__all__ == [
        "RESUME_TOOL",
        "ServerConfig",
        "StratumServer",
        "build_server",
        "serve_http",
        "serve_stdio",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8765", ("127.0.0.1", 8765)),
        (":0", ("127.0.0.1", 0)),
        ("localhost:9000", ("localhost", 9000)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:8765", ("::1", 8765)),
    ],
)
def test_listen_addresses_default_to_the_loopback_host(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["host:port", "1:99999", "[::1]8765", ""])
def test_bad_listen_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)port"):
        parse_listen_address(text)


def test_configuration_comes_from_the_environment_and_flags_win() -> None:
    env = {
        "STRATUM_PLANS": "p",
        "STRATUM_STORE": "s.db",
        "STRATUM_MODEL": "openai/x",
        "STRATUM_API_BASE": "http://b",
        "STRATUM_TOKEN": "t",
    }
    config = ServerConfig.from_env(env, model="openai/y", api_base=None)
    assert (config.plans_dir, config.store_path, config.model, config.api_base, config.token) == (
        Path("p"),
        Path("s.db"),
        "openai/y",
        "http://b",
        "t",
    )
    default = ServerConfig.from_env({})
    assert (default.plans_dir, default.store_path, default.http_host) == (DEFAULT_PLANS_DIR, DEFAULT_STORE_PATH, None)


@pytest.mark.parametrize(
    ("value", "path", "url"),
    [
        ("runs.db", Path("runs.db"), None),
        ("sqlite:////var/lib/stratum/runs.db", Path("/var/lib/stratum/runs.db"), None),
        ("postgresql://stratum@db:5432/stratum", DEFAULT_STORE_PATH, "postgresql://stratum@db:5432/stratum"),
    ],
)
def test_the_store_is_a_sqlite_file_or_a_database_url(value: str, path: Path, url: str | None) -> None:
    config = ServerConfig.from_env({"STRATUM_STORE": value})
    assert (config.store_path, config.store_url) == (path, url)


def test_the_servers_prices_are_one_table_over_the_models_file(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  hosted_vllm/a: {price: [1, 2]}\n  hosted_vllm/b: {price: [3, 4]}\n", encoding="utf-8")
    env = {"STRATUM_PRICES": "hosted_vllm/b=30,40"}

    config = ServerConfig.from_env(env, models_file=models, prices={"hosted_vllm/c": (5.0, 6.0)})

    # --price over STRATUM_PRICES over the models file's `price:`, one model at a time
    assert config.prices == {"hosted_vllm/a": (1.0, 2.0), "hosted_vllm/b": (30.0, 40.0), "hosted_vllm/c": (5.0, 6.0)}


def test_serve_refuses_a_bad_models_file_before_it_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  m: {price: free}\n", encoding="utf-8")
    assert main(["serve", "--models", str(models), "--store", ":memory:"]) == 2
    assert "models.m.price: expected [IN, OUT]" in capsys.readouterr().err


def test_dns_rebinding_protection_names_the_bound_host() -> None:
    local = transport_security("127.0.0.1")
    assert local.enable_dns_rebinding_protection and local.allowed_hosts == ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    lan = transport_security("192.168.1.5")
    assert "192.168.1.5:*" in lan.allowed_hosts and "http://192.168.1.5:*" in lan.allowed_origins


def test_serve_refuses_a_bad_http_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--http", "nowhere:port", "--store", ":memory:"]) == 2
    assert "--http" in capsys.readouterr().err


def test_serve_and_review_are_stratum_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "serve" in out and "review" in out


def test_the_claude_code_example_config_names_a_working_command() -> None:
    root = Path(__file__).parent.parent.parent
    config = json.loads((root / "claude_config.example.json").read_text(encoding="utf-8"))
    entry = config["mcpServers"]["stratum"]
    assert entry["type"] == "stdio" and entry["command"] == ".venv/bin/stratum"
    assert entry["args"][0] == "serve"
    from server._serve_command import COMMAND

    parser = argparse.ArgumentParser()
    COMMAND.configure(parser)
    args = parser.parse_args(entry["args"][1:])
    assert (root / args.plans).is_dir()
    assert entry["env"]["STRATUM_MODEL"].startswith("${STRATUM_MODEL")
