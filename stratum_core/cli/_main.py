from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Command", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Command:
    """A subcommand: `configure` adds its arguments, `run` executes it and returns the exit code."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _core_commands() -> list[Command]:
    # Imported here: the command modules import the engine, which `stratum --help` does not need to wait for.
    from stratum_core.cli._batch import COMMAND as batch
    from stratum_core.cli._export import COMMAND as export
    from stratum_core.cli._install_local import COMMAND as install_local
    from stratum_core.cli._optimize import COMMAND as optimize
    from stratum_core.cli._run import COMMANDS as run_commands
    from stratum_core.cli._validate import COMMAND as validate
    from stratum_core.cli._worker import COMMAND as worker

    return [validate, *run_commands, batch, export, optimize, install_local, worker]


def version() -> str:
    """The installed version of the `stratum` distribution ('unknown' when it is not installed)."""
    try:
        return importlib.metadata.version("stratum")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser(extra: Sequence[Command] = ()) -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    """The argument parser for `stratum`, with the core commands and `extra` ones."""
    parser = argparse.ArgumentParser(prog="stratum", description="Typed, checked, budgeted LLM flows.")
    parser.add_argument("--version", action="version", version=f"stratum {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, Command] = {}
    for command in [*_core_commands(), *extra]:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(child)
        commands[command.name] = command
    return parser, commands


def main(argv: Sequence[str] | None = None, *, extra: Sequence[Command] = ()) -> int:
    """Run `stratum` with `argv`; returns the exit code (2 for usage errors)."""
    parser, commands = build_parser(extra)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_OK if exit_.code in (0, None) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return commands[args.command].run(args)
