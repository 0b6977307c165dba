"""`stratum serve`: serve every flow of a plans folder as MCP tools, over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from stratum_core.cli import Command
from stratum_core.cli._backend_options import add_backend_options, backend_of, temporal_settings
from stratum_core.cli._model_options import add_force_model_option, add_models_file_option, model_choice
from stratum_core.errors import StratumError
from stratum_core.observability import add_otel_option

if TYPE_CHECKING:
    from server._config import ServerConfig
    from server._identity import TokenTable
    from stratum_core.observability import OTelExporter

__all__ = ["COMMAND", "READY_PREFIX", "TOKEN_PREFIX", "terminal_help"]

READY_PREFIX = "stratum: listening on "
TOKEN_PREFIX = "stratum: token: "
_MEMORY = ":memory:"


def _configure(parser: argparse.ArgumentParser) -> None:
    from stratum_core.cli._run import add_budget_options

    add_otel_option(parser)
    add_budget_options(parser)
    parser.add_argument(
        "--plans", metavar="DIR", help="folder of *.stratum.yaml plans (default: $STRATUM_PLANS or plans/)"
    )
    parser.add_argument(
        "--store",
        metavar="FILE",
        help="run store: a SQLite file or sqlite:///PATH, or postgresql://USER@HOST:PORT/DB for servers and workers "
        "on several hosts (default: $STRATUM_STORE or .stratum/stratum.db; ':memory:' keeps runs in memory)",
    )
    parser.add_argument("--model", metavar="M", help="LiteLLM model for infer steps (default: $STRATUM_MODEL)")
    parser.add_argument("--api-base", metavar="URL", help="OpenAI-compatible base URL (default: $STRATUM_API_BASE)")
    add_force_model_option(parser)
    add_models_file_option(parser)
    parser.add_argument(
        "--infer-via",
        choices=["server", "agent", "sampling"],
        help="who does infer steps: server (the --model), agent (the calling agent does each step and reports it "
        "with the stratum_step_done tool; no key needed), sampling (the client's model, for clients that support "
        "MCP sampling; others fall back to agent). Default: $STRATUM_INFER_VIA, else server when a model is "
        "configured, else agent",
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (HOST defaults to 127.0.0.1; port 0 "
        "picks a free one)",
    )
    parser.add_argument(
        "--token",
        metavar="T",
        help="bearer token HTTP clients send, naming the server's own user, who sees every run (default: "
        "$STRATUM_TOKEN; with neither this nor --tokens, a token is generated and printed)",
    )
    parser.add_argument(
        "--tokens",
        metavar="FILE",
        help="bearer tokens of several identities, one 'TOKEN NAME [operator]' a line: each sees and answers only "
        "its own runs, an operator every run (default: $STRATUM_TOKENS)",
    )
    parser.add_argument(
        "--wait",
        metavar="SECONDS",
        type=float,
        help="how long a tool call follows its run (a person answering its form included) before it answers with a "
        "run handle (stratum_await/status/cancel) and the run goes on in the server (default: 100, below clients' "
        "own time limits)",
    )
    parser.add_argument(
        "--task-wait",
        metavar="SECONDS",
        type=float,
        help="how long a flow call from a client with the MCP tasks extension waits for the result before it "
        "answers with a task (default: 1)",
    )
    parser.add_argument(
        "--reference-tools",
        action="store_true",
        help="also serve the reference Stratum server's controller tools (stratum_plan, stratum_step_done with "
        "flow_id, stratum_gate_resolve, stratum_audit, ...), so its skills and agents work unchanged",
    )
    parser.add_argument(
        "--poll", metavar="SECONDS", type=float, default=1.0, help="seconds between plan-folder scans; 0: no reload"
    )
    add_backend_options(parser)
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="server log level (stderr)"
    )


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(), format="stratum: %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level != "debug":  # one line per model call is stratum.llm's, at DEBUG; not the HTTP client's too
        for name in ("httpx", "httpcore", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from mcp.shared.exceptions import MCPDeprecationWarning

    # Logging notifications are deprecated in 2026-07-28 but still what handshake-era clients read.
    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

    from server._config import ServerConfig, parse_listen_address, store_location
    from stratum_core.cli._run import prices_of

    model, forced = model_choice(args)
    overrides: dict[str, object] = {
        "plans_dir": Path(args.plans) if args.plans else None,
        "model": model,
        "force_model": forced,
        "api_base": args.api_base,
        "token": args.token,
        "tokens_file": Path(args.tokens) if args.tokens else None,
        "poll_interval": args.poll,
        "infer_via": args.infer_via,
        "models_file": Path(args.models) if args.models else None,
        "wait": args.wait,
        "task_wait": args.task_wait,
        "allow_unpriced": args.allow_unpriced,
        "reference_tools": args.reference_tools or None,
    }
    host: str | None = None
    if args.http:
        try:
            host, port = parse_listen_address(args.http)
        except ValueError as e:
            print(f"stratum serve: --http: {e}", file=sys.stderr)
            return 2
        overrides.update(http_host=host, http_port=port)
    try:
        overrides["prices"] = prices_of(args)
        overrides["backend"] = backend_of(args)
        overrides["temporal"] = temporal_settings(args)
        config = ServerConfig.from_env(**overrides)
    except (ValueError, StratumError) as e:  # a bad STRATUM_INFER_VIA, --price, budget variable or models file
        print(f"stratum serve: {e}", file=sys.stderr)
        return 2
    if args.store == _MEMORY:
        config = ServerConfig(**{**config.__dict__, "store_path": None, "store_url": None})
    elif args.store:
        config = ServerConfig(**{**config.__dict__, **store_location(args.store)})
    if config.http_host is not None:
        from server._identity import TokenTable, is_loopback

        try:
            tokens = TokenTable.configured(token=config.token, tokens_file=config.tokens_file)
        except ValueError as e:
            print(f"stratum serve: {e}", file=sys.stderr)
            return 2
        if tokens is None and not is_loopback(config.http_host):
            print(
                f"stratum serve: --http {args.http}: serving beyond this machine needs a configured token: give "
                "--token T (or $STRATUM_TOKEN) or --tokens FILE (or $STRATUM_TOKENS); a generated token is only "
                "made for a loopback address (127.0.0.1, ::1, localhost)",
                file=sys.stderr,
            )
            return 2
        return _serve(args, config, tokens=tokens)
    from server._transport import claim_stdout, release_stdout

    # stdio: stdout is the protocol's alone, from before anything else can write to it (LiteLLM's import, a plan's
    # module, print); given back when the server stops, for a caller in the same process.
    wire = claim_stdout()
    try:
        return _serve(args, config, wire=wire)
    finally:
        release_stdout(wire)


def _serve(
    args: argparse.Namespace,
    config: ServerConfig,
    *,
    wire: BinaryIO | None = None,
    tokens: TokenTable | None = None,
) -> int:
    """Build the server and serve it until the client goes (stdio) or the process is stopped (HTTP).

    Over HTTP without configured `tokens`, a token is generated and printed with the URL (as notebook servers do).
    """
    import anyio

    from server._app import build_server
    from stratum_core.errors import StratumError

    if config.model and config.resolved_infer_via == "server":
        from stratum_core.llm import import_in_background

        import_in_background()  # off the clock: the first call does not wait for it, the handshake never does
    from server._app import open_store
    from stratum_core.observability import otel_observers

    exporters: Sequence[OTelExporter] = []
    interrupted = False
    try:
        # The exporters read traces from the store the server writes: open it once, for both.
        shared_store = open_store(config.store_path, url=config.store_url)
        exporters = otel_observers(args, shared_store)
        server = build_server(config, store=shared_store, observers=exporters)
    except (StratumError, OSError) as e:
        print(f"stratum serve: {e}", file=sys.stderr)
        return 1

    generated: str | None = None
    if config.http_host is not None and tokens is None:
        from server._identity import TokenTable, generate_token

        generated = generate_token()
        tokens = TokenTable.single(generated)

    def ready(url: str) -> None:
        if generated is not None:  # printed before the URL line, so whoever waits for the URL has it already
            print(f"{TOKEN_PREFIX}{generated}", file=sys.stderr, flush=True)
            print(
                f"stratum: clients connect to {url} with the header 'Authorization: Bearer {generated}'",
                file=sys.stderr,
                flush=True,
            )
        print(f"{READY_PREFIX}{url}", file=sys.stderr, flush=True)

    at_terminal = config.http_host is None and sys.stdin.isatty()

    async def serve() -> None:
        if config.http_host is None:
            from server._transport import serve_stdio

            await serve_stdio(server, wire=wire)
        else:
            from server._transport import serve_http

            assert tokens is not None
            await serve_http(
                server, host=config.http_host, port=config.http_port, tokens=tokens, on_ready=ready, stop=stop
            )

    stop = anyio.Event() if config.http_host is not None else None

    async def main() -> None:
        """Serve until the client leaves or SIGTERM arrives; either way runs still going are put down, recorded.

        Over HTTP, SIGTERM asks uvicorn to shut down as Ctrl-C does (open requests end, the lifespan closes):
        cancelling it from outside would cut its lifespan task off mid-await and log a traceback.
        """
        async with anyio.create_task_group() as group:

            async def stop_on_sigterm() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                    async for _ in signals:
                        if stop is None:
                            group.cancel_scope.cancel()
                            return
                        stop.set()

            group.start_soon(stop_on_sigterm)
            await serve()
            group.cancel_scope.cancel()

    try:
        if at_terminal:
            print(terminal_help(config.plans_dir, len(server.folder.catalog.tools)), file=sys.stderr, flush=True)
        anyio.run(main)
    except KeyboardInterrupt:
        if at_terminal:
            interrupted = True
    except OSError as e:  # the port is taken, ...
        print(f"stratum serve: {e}", file=sys.stderr)
        return 1
    finally:
        for exporter in exporters:
            exporter.shutdown()
        server.close()
    if interrupted:
        print("stratum serve: stopped", file=sys.stderr, flush=True)
    return 0


def terminal_help(plans: Path, tools: int) -> str:
    """What `stratum serve` says when started at a terminal: it is for MCP clients, and how to connect one."""
    command = shlex.join([_this_command(), "serve", "--plans", str(plans.resolve())])
    return "\n".join(
        [
            "stratum serve speaks MCP (JSON-RPC) on stdin and stdout: an MCP client starts it and talks to it; there",
            "is nothing to type here. To use it:",
            f"  Claude Code:    claude mcp add stratum -- {command}",
            f"  MCP Inspector:  npx @modelcontextprotocol/inspector {command}",
            "  Over HTTP:      stratum serve --http 127.0.0.1:8765   (it prints the URL and a bearer token)",
            f"Serving {tools} flow tool(s) from {plans} on this terminal anyway; press Ctrl-C to stop.",
        ]
    )


def _this_command() -> str:
    """The absolute path of the `stratum` being run (what a client's configuration should name)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "stratum" and argv0.exists():
        return os.path.abspath(argv0)
    found = shutil.which("stratum")
    return os.path.abspath(found) if found else "stratum"


COMMAND = Command(
    name="serve",
    help="Serve every flow of a plans folder as MCP tools (stdio, or streamable HTTP with --http).",
    configure=_configure,
    run=_run,
)
