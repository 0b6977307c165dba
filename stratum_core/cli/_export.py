"""`stratum export MODULE[:ATTR] [-o FILE]`: write a Python library module's contracts, functions and flows as a plan.

Exit codes: 0 written, 1 the module has something with no plan form (every problem is printed), 2 usage (the
module does not import, the output cannot be written).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path

from stratum_core.cli._main import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command
from stratum_core.errors import PlanError

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="MODULE[:ATTR]",
        help="the module to export (imported from the current folder first), optionally one flow or function of it",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="the plan file to write (default: standard output)")


def _run(args: argparse.Namespace) -> int:
    module_name, _, attr = str(args.target).partition(":")
    if not module_name:
        print("stratum export: error: give a module, e.g. `stratum export myapp.flows:triage`", file=sys.stderr)
        return EXIT_USAGE
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: modules of the current project import
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the developer's module failed at import: report it, do not crash
        print(f"stratum export: cannot import '{module_name}': {type(error).__name__}: {error}", file=sys.stderr)
        if not isinstance(error, ImportError):
            traceback.print_exc(file=sys.stderr)
        return EXIT_USAGE
    from stratum_core.library import export_plan

    output = Path(args.output) if args.output else None
    try:
        text = export_plan(module, attr or None, source=str(output) if output else "<export>")
    except PlanError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        count = len(error.problems)
        print(f"stratum export: nothing written ({count} problem{'s' if count != 1 else ''})", file=sys.stderr)
        return EXIT_FAILED
    if output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"stratum export: cannot write {output}: {error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"stratum export: wrote {output}", file=sys.stderr)
    return EXIT_OK


COMMAND = Command(
    name="export",
    help="Export a Python library module (its contracts, functions and flows) as a plan.",
    configure=_configure,
    run=_run,
)
