"""The options that choose where runs execute (`--backend`, `--temporal-address`, `--task-queue`)."""

from __future__ import annotations

import argparse
import os

from stratum_core.backends import BACKENDS, BackendName, TemporalSettings

__all__ = ["add_backend_options", "backend_of", "temporal_settings"]


def add_backend_options(parser: argparse.ArgumentParser, *, choose: bool = True) -> None:
    """Add `--backend` (unless not `choose`: a worker is always Temporal's) and the Temporal cluster options."""
    if choose:
        parser.add_argument(
            "--backend",
            choices=BACKENDS,
            help="where runs execute: in this process (local, the default; $STRATUM_BACKEND) or as Temporal "
            "workflows run by `stratum worker` processes (temporal; see docs/backends.md)",
        )
    parser.add_argument(
        "--temporal-address",
        metavar="HOST:PORT",
        help="the Temporal frontend (default: $STRATUM_TEMPORAL_ADDRESS or 127.0.0.1:7233)",
    )
    parser.add_argument(
        "--temporal-namespace", metavar="NAME", help="the Temporal namespace (default: $STRATUM_TEMPORAL_NAMESPACE)"
    )
    parser.add_argument(
        "--task-queue", metavar="NAME", help="the task queue runs go to (default: $STRATUM_TASK_QUEUE or stratum)"
    )


def backend_of(args: argparse.Namespace) -> BackendName:
    """The backend the options (or $STRATUM_BACKEND) choose; ValueError for an unknown one."""
    name = getattr(args, "backend", None) or os.environ.get("STRATUM_BACKEND") or "local"
    for choice in BACKENDS:
        if choice == name:
            return choice
    raise ValueError(f"STRATUM_BACKEND must be one of {', '.join(BACKENDS)}, not {name!r}")


def temporal_settings(args: argparse.Namespace) -> TemporalSettings:
    """The Temporal settings the options (or the STRATUM_TEMPORAL_* variables) give."""
    defaults = TemporalSettings()
    return TemporalSettings(
        address=args.temporal_address or os.environ.get("STRATUM_TEMPORAL_ADDRESS") or defaults.address,
        namespace=args.temporal_namespace or os.environ.get("STRATUM_TEMPORAL_NAMESPACE") or defaults.namespace,
        task_queue=args.task_queue or os.environ.get("STRATUM_TASK_QUEUE") or defaults.task_queue,
    )
