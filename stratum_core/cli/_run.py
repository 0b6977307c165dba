"""`stratum run`, `stratum resume` and `stratum runs`: run flows from the shell and read their traces."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from stratum_core.backends import engine_for
from stratum_core.cli._backend_options import add_backend_options, backend_of, temporal_settings
from stratum_core.cli._main import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command
from stratum_core.cli._model_options import add_force_model_option, add_models_file_option, model_choice
from stratum_core.cli._runs import configure_runs, run_runs
from stratum_core.engine import Engine, EngineConfig, RunObserver, RunResult
from stratum_core.engine._types import parse_price
from stratum_core.errors import PlanError, StratumError
from stratum_core.observability import add_otel_option, otel_observers
from stratum_core.plan import Budget
from stratum_core.store import RunStore, Trace

__all__ = [
    "COMMANDS",
    "DEFAULT_STORE",
    "EXIT_CANCELLED",
    "EXIT_PAUSED",
    "add_budget_options",
    "add_model_options",
    "engine_config",
    "open_store",
    "parse_budget",
    "prices_of",
    "run_on_console",
]

DEFAULT_STORE = ".stratum/stratum.db"
EXIT_PAUSED = 3
EXIT_CANCELLED = 130


def open_store(path: str | None) -> RunStore:
    """The store at `path` (a file or `sqlite:///PATH`), else $STRATUM_STORE, else .stratum/stratum.db."""
    from stratum_core.backends import open_run_store

    return open_run_store(path or os.environ.get("STRATUM_STORE") or DEFAULT_STORE)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The model, store and price options of the commands that run flows."""
    parser.add_argument("--model", help="LiteLLM model for infer steps (default: $STRATUM_MODEL)")
    parser.add_argument("--api-base", help="base URL of an OpenAI-compatible server (default: $STRATUM_API_BASE)")
    add_force_model_option(parser)
    parser.add_argument(
        "--store",
        help=f"run store: a file, sqlite:///PATH or postgresql://USER@HOST:PORT/DB (default: $STRATUM_STORE or "
        f"{DEFAULT_STORE})",
    )
    add_models_file_option(parser)
    add_budget_options(parser)
    add_backend_options(parser)


PRICE_HELP = (
    "a model's price in US dollars per million input and output tokens, for models LiteLLM cannot price "
    "(repeatable). Overrides $STRATUM_PRICES, which overrides the models file's `price:`; a plan's own `prices:` win "
    "for its calls. Under a cost budget, a model with no known price is refused"
)


def add_price_option(parser: argparse.ArgumentParser) -> None:
    """`--price MODEL=IN,OUT` (repeatable), shared by run, resume, serve and optimize."""
    parser.add_argument("--price", action="append", default=[], metavar="MODEL=IN,OUT", help=PRICE_HELP)


def add_budget_options(parser: argparse.ArgumentParser) -> None:
    """`--price MODEL=IN,OUT` (repeatable) and `--allow-unpriced`, shared by run, resume and serve."""
    add_price_option(parser)
    parser.add_argument(
        "--allow-unpriced",
        action="store_true",
        default=None,
        help="let models with no known price run under cost budgets; their cost is recorded as unknown",
    )


def prices_of(args: argparse.Namespace) -> dict[str, tuple[float, float]] | None:
    """The --price options as a price table (None when none was given); ValueError names a malformed one."""
    if not args.price:
        return None
    return dict(parse_price(text) for text in args.price)


def parse_budget(text: str) -> Budget:
    """`usd=0.10,tokens=5000,ms=60000` as a Budget; ValueError names what is wrong."""
    values: dict[str, Any] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name not in ("ms", "usd", "tokens"):
            raise ValueError(f"--budget: expected ms=N, usd=X or tokens=N (comma-separated), got {item.strip()!r}")
        try:
            number = float(value) if name == "usd" else int(value)
        except ValueError:
            raise ValueError(f"--budget: {name} must be a number, got {value!r}") from None
        if number <= 0:
            raise ValueError(f"--budget: {name} must be greater than 0, got {value}")
        values[name] = number
    return Budget(**values)


def _read_input(text: str) -> Any:
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    return json.loads(text)


_COLOURS = {"succeeded": "green", "skipped": "dim", "waiting": "yellow", "blocked": "yellow"}


class _ProgressObserver(RunObserver):
    """The live display of `stratum run`: a row per step, nested ones too, each ending in its final state.

    When the console is not a terminal (output piped or logged), no live display is drawn: each step that ends is
    printed as one line, so a log holds no spinner frames.
    """

    def __init__(self, progress: Progress, console: Console) -> None:
        self.progress = progress
        self.console = console
        self.live = console.is_terminal
        self.tasks: dict[str, Any] = {}
        self.kinds: dict[str, str] = {}

    async def step_started(self, run_id: str, step_id: str, kind: str) -> None:
        self.kinds[step_id] = kind
        if self.live:
            self.tasks[step_id] = self.progress.add_task(f"{step_id} ({kind})", total=None)

    async def step_ended(self, run_id: str, step_id: str, status: str) -> None:
        if "." in step_id or "[" in step_id:  # nested: top-level steps end in step_finished, with the count
            self._show(step_id, status, "")

    async def step_finished(self, run_id: str, step_id: str, status: str, done: int, total: int) -> None:
        self._show(step_id, status, f" ({done}/{total})")

    def _show(self, step_id: str, status: str, count: str) -> None:
        colour = _COLOURS.get(status, "red")
        kind = self.kinds.get(step_id)
        label = f"{step_id}{f' ({kind})' if kind else ''}: [{colour}]{status}[/]{count}"
        if not self.live:
            self.console.print(label, highlight=False)
            return
        task = self.tasks.get(step_id)
        if task is None:  # skipped or blocked: it never started
            task = self.tasks[step_id] = self.progress.add_task("", total=1)
        self.progress.update(task, description=label, total=1, completed=1)


def _summary_table(trace: Trace) -> Table:
    table = Table(title=f"run {trace.run.run_id} ({trace.run.flow}): {trace.run.status}")
    for column in ("step", "kind", "status", "attempts", "tokens in/out", "cost $", "reserved", "ms"):
        table.add_column(column, justify="right" if column in ("attempts", "ms", "cost $", "reserved") else "left")
    for step in trace.steps:
        table.add_row(
            step.step_id,
            step.kind,
            step.status,
            str(step.attempts),
            f"{step.tokens_in}/{step.tokens_out}",
            "unknown" if step.attributes.get("cost_unknown") else f"{step.cost_usd:.6f}",
            _reserved_cell(step.attributes),
            f"{step.duration_ms:.0f}" if step.duration_ms is not None else "",
        )
    budget = trace.run.attributes.get("budget")
    if isinstance(budget, dict):
        spent = f"spent {trace.run.tokens_in + trace.run.tokens_out} tokens, " + (
            "cost unknown" if trace.run.cost_unknown else f"${trace.run.cost_usd:.6f}"
        )
        reserved = _reserved_cell(budget)
        overruns = budget.get("overruns") or []
        over = f"; {len(overruns)} overrun{'s' if len(overruns) != 1 else ''} (audit)" if overruns else ""  # type: ignore[arg-type]
        table.caption = f"budget: {spent}{'; reserved ' + reserved if reserved else ''}{over}"
    return table


def _reserved_cell(attributes: Any) -> str:
    """What a step or run reserved before its calls: `tokens` and `$usd` (empty when nothing was reserved)."""
    tokens, usd = attributes.get("reserved_tokens"), attributes.get("reserved_usd")
    if not tokens:
        return ""
    return f"{tokens} tok" + (f" / ${usd:.6f}" if isinstance(usd, int | float) and usd else "")


def _report(result: RunResult, store: RunStore, console: Console) -> int:
    trace = store.get_trace(result.run_id)
    if trace is not None:
        console.print(_summary_table(trace))
    if result.status == "succeeded":
        print(json.dumps(result.output, indent=2, ensure_ascii=False))
        return EXIT_OK
    if result.status == "paused" and result.review is not None:
        console.print(
            f"[yellow]paused[/]: waiting for a person to answer {result.review.question!r} "
            f"(review {result.review.review_id}). Answer it, then `stratum resume {result.run_id}`."
        )
        return EXIT_PAUSED
    error = result.error
    console.print(f"[red]failed[/]: {type(error).__name__}: {error}")
    return EXIT_FAILED


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """The engine configuration the model options (and the STRATUM_* variables) give."""
    model, forced = model_choice(args)
    config = EngineConfig.from_env(
        model=model,
        api_base=args.api_base,
        force_model=forced,
        models_file=args.models,
        prices=prices_of(args),
        allow_unpriced=args.allow_unpriced,
    )
    if config.model is None:  # nothing configured: the embedded local model, when it is installed
        from stratum_core.llm import default_model

        config = dataclasses.replace(config, model=default_model())
    return config


async def _execute(args: argparse.Namespace, console: Console, resume: bool) -> int:
    from stratum_core.cli._console_review import ConsoleReviewSink

    store = open_store(args.store)
    config = engine_config(args)
    if config.model:  # LiteLLM's import starts now, in the background, and never counts against a budget
        from stratum_core.llm import import_in_background

        import_in_background()
    exporters = otel_observers(args, store)
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not console.is_terminal,  # piped: one line per step instead (see _ProgressObserver)
        ) as progress:
            sink = ConsoleReviewSink(console, live=progress if console.is_terminal else None)
            engine = engine_for(
                backend_of(args),
                store=store,
                config=config,
                review_sink=sink,
                observers=exporters,
                temporal=temporal_settings(args),
            )
            result = await _run_or_resume(args, engine, _ProgressObserver(progress, console), resume)
    finally:
        for exporter in exporters:
            exporter.shutdown()
    return _report(result, store, console)


async def _run_or_resume(args: argparse.Namespace, engine: Engine, observer: RunObserver, resume: bool) -> RunResult:
    from stratum_core.plan import load_plan

    if resume:
        budget = parse_budget(args.budget) if args.budget else None
        return await engine.resume(args.run_id, observer=observer, budget=budget)
    plan = load_plan(args.plan)
    inputs = _read_input(args.input)
    return await engine.run(plan, args.flow, inputs, observer=observer)


def run_on_console(command: Callable[[Console], Awaitable[int]]) -> int:
    """Run an async command with a console on stderr; its errors become a message and an exit code.

    A plan error is printed as it is (every problem, with its place); a bad argument or file is a usage error; any
    other Stratum error fails the command; Ctrl-C cancels it.
    """
    console = Console(stderr=True)
    if not console.is_terminal:  # a log: wide enough that a summary table keeps its ids whole
        console = Console(stderr=True, width=160)
    try:
        return anyio.run(command, console)
    except PlanError as error:
        console.print(str(error))
        return EXIT_USAGE
    except (ValueError, OSError) as error:
        console.print(f"[red]error[/]: {error}")
        return EXIT_USAGE
    except StratumError as error:
        console.print(f"[red]error[/]: {error}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.print("[red]cancelled[/]")
        return EXIT_CANCELLED


def _run(args: argparse.Namespace, *, resume: bool = False) -> int:
    return run_on_console(lambda console: _execute(args, console, resume))


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="the .stratum.yaml file")
    parser.add_argument("flow", help="the flow to run")
    parser.add_argument("--input", default="{}", help="the flow input as JSON, or @FILE")
    add_model_options(parser)
    add_otel_option(parser)


def _configure_resume(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", help="the paused or interrupted run (or one that stopped on its budget: --budget)")
    parser.add_argument(
        "--budget",
        metavar="DIM=N,...",
        help="raise the flow's budget for this run, e.g. usd=0.10 or tokens=20000,ms=60000; a run that stopped on "
        "its budget then goes on from its checkpoint, without re-running finished steps",
    )
    add_model_options(parser)
    add_otel_option(parser)


COMMANDS = [
    Command("run", "Run a flow of a plan, asking a person at the console for human steps.", _configure_run, _run),
    Command("resume", "Resume a paused or interrupted run.", _configure_resume, lambda a: _run(a, resume=True)),
    Command("runs", "list runs, show one run's trace or timeline, or summarize a period", configure_runs, run_runs),
]
