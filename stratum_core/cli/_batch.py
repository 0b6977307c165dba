"""`stratum batch`: run a flow once per line of a JSONL file, in this process or over a Ray cluster.

```
stratum batch PLAN FLOW --input items.jsonl --output results.jsonl [--concurrency 8]
    [--item-budget usd=0.01,ms=30000] [--budget usd=5] [--expect FIELD|EXPRESSION] [--summary summary.json]
    [--retry-failed] [--ray ADDRESS|auto|local [--ray-workers N]] [--model M] [--api-base URL] [--store FILE]
```

Progress goes to stderr (a live line on a terminal, a plain line per tenth of the items otherwise), the summary too,
and the summary's JSON to stdout (and `--summary FILE`). Ctrl-C (or SIGTERM) stops cleanly: the items in flight are
cancelled and recorded as such, the results file keeps every item done; the same command then goes on from there.
Exit codes: 0 every item done (some may have failed: see the summary), 1 the batch stopped on its budget,
2 usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path

import anyio
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from stratum_core.batch import Batch, BatchProgress, BatchSummary, Expectation, ItemResult, ResultsFile, read_items
from stratum_core.cli._main import EXIT_FAILED, EXIT_OK, Command
from stratum_core.cli._run import (
    EXIT_CANCELLED,
    add_model_options,
    engine_config,
    open_store,
    parse_budget,
    run_on_console,
)

__all__ = ["COMMAND", "progress_line", "summary_table"]

_REFRESH_S = 0.5


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="the .stratum.yaml file")
    parser.add_argument("flow", help="the flow to run on each item")
    parser.add_argument("--input", required=True, metavar="FILE", help="the items: a JSON object (flow input) a line")
    parser.add_argument("--output", required=True, metavar="FILE", help="the results: one JSON line per item done")
    parser.add_argument("--concurrency", type=int, default=4, metavar="N", help="items running at a time (default 4)")
    parser.add_argument(
        "--item-budget", metavar="DIM=N,...", help="each item's budget, e.g. usd=0.01,tokens=4000,ms=30000"
    )
    parser.add_argument(
        "--budget",
        metavar="DIM=N,...",
        help="the whole batch's budget (usd, tokens, ms); every call reserves from it, so items cannot overspend "
        "it together; what earlier invocations of the batch spent counts",
    )
    parser.add_argument(
        "--expect",
        metavar="FIELD|EXPR",
        help="for an accuracy figure: a field of each input line holding the expected output, or an expression "
        'reading `input` and `output` (e.g. "output.label == input.gold")',
    )
    parser.add_argument("--summary", metavar="FILE", help="also write the summary's JSON here")
    parser.add_argument(
        "--retry-failed", action="store_true", help="run again the items whose earlier run failed (default: done)"
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="spread the items over a Ray cluster (`auto`: the one this machine is in, `local`: start one here, "
        "loopback only); needs pip install 'stratum[ray]'",
    )
    parser.add_argument("--ray-workers", type=int, metavar="N", help="with --ray: worker actors (default: CPUs)")
    add_model_options(parser)


def progress_line(progress: BatchProgress, *, elapsed_s: float) -> str:
    """One line: done/total, failures, cost so far, items/s, ETA."""
    eta = progress.eta_s()
    rate = (progress.done - progress.reused) / elapsed_s if elapsed_s > 0 else 0.0
    parts = [
        f"{progress.done}/{progress.total} done",
        f"{progress.failed} failed",
        f"{progress.running} running",
        f"${progress.cost_usd:.4f}",
        f"{rate:.1f} items/s",
        f"ETA {_duration(eta)}" if eta is not None else "ETA -",
    ]
    if progress.reused:
        parts.insert(1, f"{progress.reused} from earlier runs")
    return " | ".join(parts)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def summary_table(summary: BatchSummary) -> Table:
    """The summary as a table (stderr)."""
    title = f"batch {summary.batch_id}: {summary.succeeded + summary.failed}/{summary.total} done"
    if summary.stopped:
        title += f" (stopped: {summary.stopped})"
    table = Table(title=title, show_header=False, title_justify="left", min_width=len(title))
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("succeeded", str(summary.succeeded))
    table.add_row("failed", str(summary.failed))
    for error_type, count in sorted(summary.failures.items()):
        table.add_row(f"  {error_type}", str(count))
    for name in ("cancelled", "paused", "not_run", "reused"):
        value = getattr(summary, name)
        if value:
            table.add_row(name.replace("_", " ") + (" (done earlier)" if name == "reused" else ""), str(value))
    table.add_row("p50 / p95", f"{_ms(summary.p50_ms)} / {_ms(summary.p95_ms)}")
    table.add_row("tokens", f"{summary.tokens:,}")
    table.add_row("cost", f"${summary.cost_usd:.6f}")
    if summary.accuracy is not None:
        table.add_row("accuracy", f"{summary.accuracy:.1%} ({summary.correct}/{summary.judged})")
    if summary.stop_reason:
        table.caption = summary.stop_reason
    return table


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


class _Display:
    """The live progress line on a terminal; a plain line each tenth of the items (and at the end) otherwise."""

    def __init__(self, console: Console, batch: Batch) -> None:
        self.console = console
        self.batch = batch
        self.live: Live | None = None
        self.next_mark = 0
        self.last_line = ""

    def __enter__(self) -> _Display:
        if self.console.is_terminal:
            self.live = Live(Text(""), console=self.console, auto_refresh=False, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh(final=True)
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def refresh(self, *, final: bool = False) -> None:
        progress = self.batch.progress
        line = progress_line(progress, elapsed_s=time.monotonic() - progress.started)
        if self.live is not None:
            self.live.update(Text(line), refresh=True)
            return
        finished = progress.done + progress.not_run + progress.cancelled
        step = max(1, progress.total // 10)
        if (final or finished >= self.next_mark) and line != self.last_line:
            self.console.print(line, highlight=False, markup=False)
            self.last_line = line
            self.next_mark = (finished // step + 1) * step

    async def keep_fresh(self) -> None:
        while True:
            await anyio.sleep(_REFRESH_S)
            if self.live is not None:
                self.refresh()


async def _execute(args: argparse.Namespace, console: Console) -> int:
    from stratum_core.engine import Engine
    from stratum_core.plan import load_plan

    plan = load_plan(args.plan)
    if args.flow not in plan.flows:
        raise ValueError(f"unknown flow {args.flow!r} (flows: {', '.join(plan.flows) or 'none'})")
    expect = Expectation.parse(args.expect) if args.expect else None
    items = read_items(args.input, plan, args.flow)
    item_budget = parse_budget(args.item_budget) if args.item_budget else None
    batch_budget = parse_budget(args.budget) if args.budget else None
    if args.concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    store = open_store(args.store)
    config = engine_config(args)
    if config.model:  # LiteLLM's import starts now, in the background, and never counts against a budget
        from stratum_core.llm import import_in_background

        import_in_background()
    engine = Engine(store=store, config=config)
    runner = None
    if args.ray:
        from stratum_core.batch import RayItemRunner

        runner = RayItemRunner(args.ray, config=config, workers=args.ray_workers)
    batch = Batch(
        engine,
        plan,
        args.flow,
        items,
        concurrency=args.concurrency,
        item_budget=item_budget,
        batch_budget=batch_budget,
        expect=expect,
        retry_failed=args.retry_failed,
        runner=runner,
    )
    console.print(f"batch {batch.id}: {len(items)} items of {args.flow} from {args.input}", highlight=False)
    interrupted = False
    results = ResultsFile(args.output)
    started = time.monotonic()
    with results, _Display(console, batch) as display:

        def on_result(result: ItemResult) -> None:
            results.write(result)
            if display.live is None:
                display.refresh()

        async with anyio.create_task_group() as tg:

            async def watch_signals() -> None:
                nonlocal interrupted
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        interrupted = True
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch_signals)
            tg.start_soon(display.keep_fresh)
            await batch.run(on_result)
            tg.cancel_scope.cancel()
    summary = batch.summary(elapsed_s=time.monotonic() - started)
    if interrupted:
        summary.stopped, summary.stop_reason = "interrupted", "interrupted: the items in flight were cancelled"
    store.close()
    console.print(summary_table(summary))
    document = summary.to_json()
    if args.summary:
        Path(args.summary).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(document))
    if interrupted:
        return EXIT_CANCELLED
    return EXIT_FAILED if summary.stopped else EXIT_OK


def _run(args: argparse.Namespace) -> int:
    return run_on_console(lambda console: _execute(args, console))


COMMAND = Command("batch", "Run a flow once per line of a JSONL file (here, or on Ray: --ray).", _configure, _run)
