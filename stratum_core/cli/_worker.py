"""`stratum worker`: runs Stratum's Temporal workflows and activities until stopped (Ctrl-C or SIGTERM).

Start as many as you like, on any hosts that reach the Temporal cluster, the run store and the plans' `call:`
modules; each polls the task queue the servers start runs on.
"""

from __future__ import annotations

import argparse
import logging
import sys

import anyio

from stratum_core.cli._backend_options import add_backend_options, temporal_settings
from stratum_core.cli._main import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command
from stratum_core.cli._model_options import add_force_model_option
from stratum_core.errors import StratumError

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    from stratum_core.cli._run import DEFAULT_STORE, add_budget_options

    parser.add_argument("--model", help="LiteLLM model for infer steps (default: $STRATUM_MODEL)")
    parser.add_argument("--api-base", help="base URL of an OpenAI-compatible server (default: $STRATUM_API_BASE)")
    add_force_model_option(parser)
    parser.add_argument(
        "--store",
        help=f"the run store the servers use: a path or sqlite:///PATH on their host, postgresql://USER@HOST:PORT/DB "
        f"across hosts (default: $STRATUM_STORE or {DEFAULT_STORE})",
    )
    parser.add_argument("--models", metavar="FILE", help="models file (default: $STRATUM_MODELS)")
    add_budget_options(parser)
    add_backend_options(parser, choose=False)


async def _serve(args: argparse.Namespace) -> None:
    from stratum_core.backends._settings import require_temporal
    from stratum_core.cli._run import engine_config, open_store
    from stratum_core.engine import Engine

    require_temporal()
    from stratum_core.backends.temporal import run_worker

    config = engine_config(args)
    settings = temporal_settings(args)
    store = open_store(args.store)
    print(
        f"stratum worker: task queue {settings.task_queue!r} on {settings.address} "
        f"(namespace {settings.namespace}), store {store!r}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await run_worker(settings, Engine(store=store, config=config))
    finally:
        store.close()


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="stratum worker: %(levelname)s %(message)s")
    try:
        anyio.run(_serve, args)
    except KeyboardInterrupt:
        return EXIT_OK
    except (ValueError, OSError) as error:
        print(f"stratum worker: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (StratumError, RuntimeError) as error:
        print(f"stratum worker: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


COMMAND = Command(
    "worker",
    "Run Stratum's Temporal workflows and activities (the temporal backend; see docs/backends.md).",
    _configure,
    _run,
)
