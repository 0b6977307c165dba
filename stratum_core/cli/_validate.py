"""`stratum validate PATH...`: load and check plans, print every problem, exit 0 (valid), 1 (invalid) or 2 (usage)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from stratum_core.cli._main import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command
from stratum_core.cli._price_warnings import unpriced_warnings
from stratum_core.engine._types import budget_settings
from stratum_core.errors import PlanError, Problem
from stratum_core.plan import Plan, find_plan_files, load_plan

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="plan files (any name), or folders searched recursively for *.stratum.yaml and *.stratum.yml",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="text: one problem per line; json: a JSON array"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also list, as warnings, every check the types cannot decide and the engine makes when the plan runs",
    )
    calls = parser.add_mutually_exclusive_group()
    calls.add_argument(
        "--import",
        dest="import_modules",
        action="store_true",
        help="import the modules of compute `call:` targets to check them (runs their top-level code); by default "
        "each module is found and its source read, without running any of it",
    )
    calls.add_argument("--no-imports", action="store_true", help="do not check compute `call:` targets at all")


def _collect(paths: list[str]) -> tuple[list[Path], list[str]]:
    """The plan files named by `paths` (folders expanded), and the usage errors found on the way."""
    files: list[Path] = []
    errors: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = find_plan_files(path, recursive=True)
            if not found:
                errors.append(f"no plan (*.stratum.yaml or *.stratum.yml) in folder '{given}'")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(f"no such file or folder: '{given}'")
    return list(dict.fromkeys(files)), errors


def _run(args: argparse.Namespace) -> int:
    files, usage = _collect(list(args.paths))
    if usage:
        for message in usage:
            print(f"stratum validate: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    problems: list[Problem] = []
    warnings: list[Problem] = []
    budget_warnings: list[str] = []  # always shown: such a plan is refused when it runs
    invalid = more = 0
    try:
        settings = budget_settings(os.environ)
    except ValueError as error:
        print(f"stratum validate: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    default_model = os.environ.get("STRATUM_MODEL") or None
    for file in files:
        checks: list[Problem] = []
        plan: Plan | None = None
        try:
            plan = load_plan(
                file,
                check_imports=False if args.no_imports else True if args.import_modules else "static",
                runtime_checks=checks,
            )
        except PlanError as error:
            invalid += 1
            problems.extend(error.problems)
            more += error.more
        warnings.extend(checks if args.strict else ())
        if plan is not None:
            budget_warnings.extend(
                unpriced_warnings(
                    plan,
                    default_model=default_model,
                    prices=settings.get("prices", {}),
                    allow_unpriced=bool(settings.get("allow_unpriced")),
                )
            )
    for text in budget_warnings:
        print(text, file=sys.stderr)
    if args.format == "json":
        shown = [problem.as_dict() for problem in problems]
        if args.strict:  # warnings only with --strict, each entry then says which it is
            shown = [{**entry, "severity": "error"} for entry in shown]
            shown += [{**warning.as_dict(), "severity": "warning"} for warning in warnings]
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    else:
        for problem in problems:
            print(problem)
        if more:
            print(f"... and {more} more problems")
        for warning in warnings:
            print(f"warning: {warning}")
    count = len(files)
    plans = f"{count} plan{'s' if count != 1 else ''}"
    if args.strict:
        print(f"{len(warnings)} run-time check{'s' if len(warnings) != 1 else ''} (warnings)", file=sys.stderr)
    if invalid:
        total = len(problems) + more
        found = f"{total} problem{'s' if total != 1 else ''}"
        print(f"{invalid} of {plans} invalid ({found})", file=sys.stderr)
        return EXIT_FAILED
    print(f"{plans} valid", file=sys.stderr)
    return EXIT_OK


COMMAND = Command(
    name="validate", help="Check plans: every problem at once, with file:line:col.", configure=_configure, run=_run
)
