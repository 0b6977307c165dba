"""What `stratum serve` is configured with: where plans and runs live, which model infer steps use, how to listen."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast, get_args

from stratum_core.backends import BackendName, TemporalSettings

__all__ = [
    "DEFAULT_PLANS_DIR",
    "DEFAULT_STORE_PATH",
    "INFER_VIA_CHOICES",
    "INFER_VIA_DESCRIPTIONS",
    "InferVia",
    "ServerConfig",
    "parse_infer_via",
    "parse_listen_address",
    "parse_size",
]

InferVia = Literal["server", "agent", "sampling"]
"""Who does infer steps: the server's model, the calling agent (stratum_step_done), or the client's model."""
INFER_VIA_CHOICES: tuple[InferVia, ...] = get_args(InferVia)
INFER_VIA_DESCRIPTIONS: dict[InferVia, str] = {
    "server": "the server's model",
    "agent": "the calling agent (stratum_step_done)",
    "sampling": "the client's model through MCP sampling (clients without it: the calling agent)",
}

DEFAULT_PLANS_DIR = Path("plans")
DEFAULT_STORE_PATH = Path(".stratum") / "stratum.db"


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """How the MCP server runs.

    Attributes:
        plans_dir: the folder whose `*.stratum.yaml` files become tools.
        store_path: the SQLite run store; None keeps runs in memory (tests).
        store_url: a PostgreSQL URL naming the run store instead (servers and workers on several hosts); the
            key file of `request_state` still goes beside `store_path`.
        model: the LiteLLM model string for infer steps that do not name one.
        api_base: base URL of an OpenAI-compatible server for that model.
        api_key: the key sent with every model call, when the provider's own variable is not used.
        http_host: host to bind for streamable HTTP; None serves stdio.
        http_port: port to bind for streamable HTTP (0 picks a free one).
        token: a bearer token HTTP clients may send, naming the server's own user (an operator); with neither it
            nor `tokens_file`, `stratum serve --http` generates one and prints it.
        tokens_file: a file of bearer tokens and the identities they name (`TOKEN NAME [operator]` a line); each
            identity sees and answers only its own runs, an operator every run (`--tokens`, `STRATUM_TOKENS`).
        poll_interval: seconds between two scans of `plans_dir` for changes (0 disables hot reload).
        review_ttl: seconds a 2026-07-28 client may take to answer an elicitation before its sealed state expires.
        wait: seconds a tool call follows its run (including a person answering its form) before it answers with
            a run handle and the run goes on in the server; below clients' own limits (Claude Code backgrounds a
            call after about 2 minutes).
        task_wait: seconds a flow call from a client with the MCP tasks extension waits before it answers with a
            task (a run that finishes first is answered with its result).
        task_poll_interval: the polling interval suggested to tasks clients, in seconds.
        name: the server name announced to clients.
        infer_via: who does infer steps without an `executor` (see `InferVia`); None: the server's model when one
            is configured, else the calling agent.
        models_file: the models file (how self-hosted models take the output schema; `STRATUM_MODELS`).
        prices: model prices in US dollars per million (input, output) tokens, for models LiteLLM cannot price
            (`--price MODEL=IN,OUT`, `STRATUM_PRICES`).
        allow_unpriced: let unpriced models run under cost budgets, their cost unknown (`--allow-unpriced`).
        call_timeout: seconds one model call may take, retries and waits included, when no time budget ends it
            sooner (`STRATUM_CALL_TIMEOUT`).
        max_retry_wait: the longest wait before a transport retry (`STRATUM_MAX_RETRY_WAIT`).
        force_model: `model` does every infer step, whatever model the plan's functions name.
        max_argument_bytes: the largest arguments a tool call may carry, as JSON (a flow's input, a `stratum_run`
            plan with its input, a review's answer).
        max_report_bytes: the largest output an agent may report with `stratum_step_done`, as JSON.
        max_result_bytes: the largest flow output the server answers with, as JSON (larger: read the trace).
        max_message_bytes: the largest message a client may send: a stdio line, an HTTP request body.
        backend: where runs execute: `local` (this process) or `temporal` (workflows run by `stratum worker`s).
        temporal: the Temporal cluster and task queue, for the temporal backend.
        reference_tools: also serve the reference server's controller tools (`--reference-tools`,
            `STRATUM_REFERENCE_TOOLS=1`; see server/_reference_tools).
    """

    plans_dir: Path = DEFAULT_PLANS_DIR
    store_path: Path | None = DEFAULT_STORE_PATH
    store_url: str | None = None
    model: str | None = None
    api_base: str | None = None
    api_key: str | None = None
    http_host: str | None = None
    http_port: int = 8765
    token: str | None = None
    tokens_file: Path | None = None
    poll_interval: float = 1.0
    review_ttl: float = 24 * 3600.0
    wait: float = 100.0
    task_wait: float = 1.0
    task_poll_interval: float = 2.0
    name: str = "stratum"
    infer_via: InferVia | None = None
    models_file: Path | None = None
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    allow_unpriced: bool = False
    call_timeout: float = 300.0
    max_retry_wait: float = 30.0
    force_model: bool = False
    max_argument_bytes: int = 1_000_000
    max_report_bytes: int = 1_000_000
    max_result_bytes: int = 4_000_000
    max_message_bytes: int = 4_000_000
    backend: BackendName = "local"
    temporal: TemporalSettings = field(default_factory=TemporalSettings)
    reference_tools: bool = False

    @property
    def resolved_infer_via(self) -> InferVia:
        """`infer_via`, or its default: `server` when a model is configured, else `agent` (so no key is needed)."""
        if self.infer_via is not None:
            return self.infer_via
        return "server" if self.model else "agent"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, /, **overrides: object) -> ServerConfig:
        """Read the STRATUM_* variables: PLANS, STORE, MODEL, API_BASE, API_KEY, TOKEN(S), INFER_VIA, MODELS, limits.

        FORCE_MODEL names a model for every infer step (as `--force-model MODEL`).

        The budget ones are those the engine reads: PRICES, ALLOW_UNPRICED, CALL_TIMEOUT, MAX_RETRY_WAIT; the sizes
        are MAX_ARGUMENT_BYTES, MAX_REPORT_BYTES, MAX_RESULT_BYTES and MAX_MESSAGE_BYTES. Explicit overrides that
        are not None win over the environment. A malformed value raises ValueError.
        """
        from stratum_core.engine._types import budget_settings, configured_models_file
        from stratum_core.llm._models_file import price_table

        env = os.environ if env is None else env
        values: dict[str, object] = budget_settings(env)
        if env.get("STRATUM_PLANS"):
            values["plans_dir"] = Path(env["STRATUM_PLANS"])
        if env.get("STRATUM_STORE"):
            values.update(store_location(env["STRATUM_STORE"]))
        if env.get("STRATUM_MODELS"):
            values["models_file"] = Path(env["STRATUM_MODELS"])
        if env.get("STRATUM_TOKENS"):
            values["tokens_file"] = Path(env["STRATUM_TOKENS"])
        for key, name in (
            ("model", "STRATUM_MODEL"),
            ("api_base", "STRATUM_API_BASE"),
            ("api_key", "STRATUM_API_KEY"),
            ("token", "STRATUM_TOKEN"),
        ):
            if env.get(name):
                values[key] = env[name]
        if env.get("STRATUM_FORCE_MODEL"):  # a model name: that model for every step
            values.update(model=env["STRATUM_FORCE_MODEL"], force_model=True)
        for key in ("max_argument_bytes", "max_report_bytes", "max_result_bytes", "max_message_bytes"):
            name = f"STRATUM_{key.upper()}"
            if env.get(name):
                values[key] = parse_size(env[name], what=name)
        if env.get("STRATUM_REFERENCE_TOOLS", "").strip().lower() in ("1", "true", "yes"):
            values["reference_tools"] = True
        if env.get("STRATUM_INFER_VIA"):
            values["infer_via"] = parse_infer_via(env["STRATUM_INFER_VIA"], what="STRATUM_INFER_VIA")
        command_line = overrides.pop("prices", None)
        values.update({key: value for key, value in overrides.items() if value is not None})
        # One price table: --price over STRATUM_PRICES over the models file's `price:` (see price_table).
        models = configured_models_file(cast("Path | None", values.get("models_file")), env)
        values["prices"] = price_table(
            models_file=models.prices if models is not None else None,
            environment=cast("Mapping[str, tuple[float, float]] | None", values.get("prices")),
            command_line=cast("Mapping[str, tuple[float, float]] | None", command_line),
        )
        return cls(**values)  # type: ignore[arg-type]


def store_location(text: str) -> dict[str, object]:
    """The config fields a `--store` or STRATUM_STORE value sets: a SQLite file, or a database URL.

    A path or `sqlite:///PATH` names the SQLite file; `postgresql://...` a database `open_run_store` opens.
    """
    if text.startswith("sqlite:///") and len(text) > len("sqlite:///"):
        return {"store_path": Path(text.removeprefix("sqlite:///")), "store_url": None}
    if "://" in text:
        return {"store_url": text}
    return {"store_path": Path(text), "store_url": None}


def parse_infer_via(text: str, *, what: str = "--infer-via") -> InferVia:
    """An `InferVia` from its name; ValueError names the choices."""
    value = text.strip().lower()
    for choice in INFER_VIA_CHOICES:
        if choice == value:
            return choice
    raise ValueError(f"{what} must be one of {', '.join(INFER_VIA_CHOICES)}, not {text!r}")


def parse_size(text: str, *, what: str) -> int:
    """A positive number of bytes: `1000000`, `1_000_000`, `512k`, `4M` (k and M are 1000 and 1000000)."""
    value = text.strip().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(value[-1:].lower(), 1)
    digits = value[:-1] if scale > 1 else value
    if not digits.isdigit() or int(digits) <= 0:
        raise ValueError(f"{what} must be a positive number of bytes (e.g. 1000000 or 4M), not {text!r}")
    return int(digits) * scale


def parse_listen_address(text: str) -> tuple[str, int]:
    """Split `HOST:PORT`, `:PORT` or `PORT` (host 127.0.0.1); IPv6 hosts go in brackets: `[::1]:8765`."""
    text = text.strip()
    host, port_text = "127.0.0.1", text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1 :].startswith(":"):
            raise ValueError(f"expected [HOST]:PORT, got {text!r}")
        host, port_text = text[1:end], text[end + 2 :]
    elif ":" in text:
        head, _, port_text = text.rpartition(":")
        host = head or host
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"expected HOST:PORT with a numeric port, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    return host, port
