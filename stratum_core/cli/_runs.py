"""`stratum runs`: list runs (filtered by flow, status and period), show one (table, JSON or SVG timeline), summarize.

```
stratum runs [list] [--flow F] [--status S] [--batch ID] [--since 24h] [--until 2026-05-01] [--limit N] [--format json]
stratum runs show RUN_ID [--format json] [--svg timeline.svg]
stratum runs summary [--since 7d] [--flow F] [--format table|json]
```
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import get_args

from rich.console import Console
from rich.table import Table

from stratum_core.cli._main import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from stratum_core.observability import Summary, parse_time, render_timeline_svg, summarize
from stratum_core.observability._summary import describe_period
from stratum_core.store import RunRecord, RunStatus, RunStore, StoreError, Trace

__all__ = ["configure_runs", "run_runs"]

_PAGE = 500
_SUMMARY_SINCE = "7d"


def configure_runs(parser: argparse.ArgumentParser) -> None:
    """The arguments of `stratum runs`."""
    parser.add_argument(
        "action",
        nargs="?",
        choices=["list", "show", "summary"],
        default="list",
        help="list runs (default), show one run, or summarize a period",
    )
    parser.add_argument("run_id", nargs="?", help="with `show`: the run to show")
    parser.add_argument(
        "--store", help="run store: a file or a postgresql:// URL (default: $STRATUM_STORE or .stratum/stratum.db)"
    )
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--flow", help="only runs of this flow")
    parser.add_argument("--status", choices=list(get_args(RunStatus)), help="only runs with this status")
    parser.add_argument("--batch", metavar="ID", help="only the runs of this batch (`stratum batch`)")
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help="only runs created from WHEN: an ISO date or time (2026-05-01, 2026-05-01T09:30) or a "
        f"duration ago (30m, 24h, 7d); `summary` defaults to {_SUMMARY_SINCE}",
    )
    parser.add_argument("--until", metavar="WHEN", help="only runs created before WHEN (same forms as --since)")
    parser.add_argument("--limit", type=int, default=20, help="with `list`: how many runs (default 20)")
    parser.add_argument("--svg", metavar="FILE", help="with `show`: write the run's timeline as SVG ('-': stdout)")


def _console() -> Console:
    """The console for stdout; wide when piped, so tables are not cut to 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _usage(message: str) -> int:
    print(f"stratum runs: {message}", file=sys.stderr)
    return EXIT_USAGE


def _period(args: argparse.Namespace, *, default_since: str | None) -> tuple[float | None, float | None]:
    now = time.time()
    since_text = args.since if args.since is not None else (default_since if args.until is None else None)
    since = parse_time(since_text, now=now) if since_text else None
    until = parse_time(args.until, now=now) if args.until else None
    return since, until


def run_runs(args: argparse.Namespace) -> int:
    """Run `stratum runs` and return its exit code."""
    from stratum_core.cli._run import open_store

    if args.svg is not None and args.action != "show":
        return _usage("--svg goes with `show RUN_ID`")
    if args.run_id is not None and args.action != "show":
        return _usage(f"`{args.action}` takes no RUN_ID (did you mean `stratum runs show {args.run_id}`?)")
    if args.limit < 1:
        return _usage("--limit must be at least 1")
    try:
        since, until = _period(args, default_since=_SUMMARY_SINCE if args.action == "summary" else None)
    except ValueError as error:
        return _usage(str(error))
    store = open_store(args.store)
    try:
        if args.action == "show":
            return _show(args, store)
        if args.action == "summary":
            return _summary(args, store, since, until)
        return _list(args, store, since, until)
    except StoreError as error:
        print(f"stratum runs: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        store.close()


def _show(args: argparse.Namespace, store: RunStore) -> int:
    from stratum_core.cli._run import _summary_table

    if not args.run_id:
        return _usage("show: a RUN_ID is needed")
    trace = store.get_trace(args.run_id)
    if trace is None:
        print(f"stratum runs show: no run {args.run_id!r} in {store}", file=sys.stderr)
        return EXIT_FAILED
    if args.svg == "-":
        sys.stdout.write(render_timeline_svg(trace))
        return EXIT_OK
    if args.format == "json":
        print(json.dumps(trace.to_json_dict(), indent=2, ensure_ascii=False))
    else:
        console = _console()
        console.print(_summary_table(trace))
        for line in run_details(trace):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if args.svg is not None:
        try:
            Path(args.svg).write_text(render_timeline_svg(trace), encoding="utf-8")
        except OSError as error:
            print(f"stratum runs show: cannot write {args.svg}: {error}", file=sys.stderr)
            return EXIT_FAILED
        print(f"timeline written to {args.svg}", file=sys.stderr)
    return EXIT_OK


def _list(args: argparse.Namespace, store: RunStore, since: float | None, until: float | None) -> int:
    page = store.list_runs(
        flow=args.flow, status=args.status, since=since, until=until, limit=args.limit, batch=args.batch
    )
    if args.format == "json":
        print(json.dumps([run.model_dump(mode="json", exclude={"plan_text"}) for run in page.runs], indent=2))
        return EXIT_OK
    table = Table(title="recent runs" if since is None and until is None else f"runs {describe_period(since, until)}")
    for column in ("run", "started", "flow", "status", "tokens", "cost $", "ms", "error"):
        table.add_column(column, no_wrap=column in ("run", "started"))
    for run in page.runs:
        error = run.error or {}
        table.add_row(
            run.run_id,
            local_time(run.created_at),
            run.flow,
            run.status,
            str(run.tokens_in + run.tokens_out),
            "unknown" if run.cost_unknown else f"{run.cost_usd:.6f}",
            f"{run.duration_ms:.0f}" if run.duration_ms is not None else "",
            str(error.get("type", "")),
        )
    _console().print(table)
    return EXIT_OK


def local_time(epoch: float | None) -> str:
    """An epoch time as the local date and time to the second (what a person compares with their clock)."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S")


_SHOWN_ELSEWHERE = {"type", "message", "step_id", "traceback", "history", "violations"}


def run_details(trace: Trace) -> list[str]:
    """What `stratum runs show` prints under the step table: when and how the run ended, its error, violations."""
    run = trace.run
    cost = "unknown" if run.cost_unknown else f"${run.cost_usd:.6f}"
    took = f", took {_ms(run.duration_ms)}" if run.duration_ms is not None else ""
    lines = [
        f"started {local_time(run.created_at)}{took}; {run.tokens_in + run.tokens_out:,} tokens, cost {cost}",
    ]
    backend = run.attributes.get("backend")
    if isinstance(backend, dict) and backend.get("name"):
        extra = ", ".join(f"{key} {value}" for key, value in backend.items() if key != "name")
        lines.append(f"backend: {backend['name']}" + (f" ({extra})" if extra else ""))
    error = run.error or {}
    if error:
        where = f" at step '{error['step_id']}'" if error.get("step_id") else ""
        lines.append(f"{run.status}: {error.get('type', 'error')}{where}: {error.get('message', '')}")
        lines.extend(f"  {key}: {_plain(value)}" for key, value in error.items() if key not in _SHOWN_ELSEWHERE)
        violations = error.get("violations")
        rejected_any = any(attempt.violations for attempt in trace.attempts)
        if isinstance(violations, list) and violations and not rejected_any:  # else listed with the attempts
            lines.append("  violations (last attempt):")
            lines.extend(f"    - {violation}" for violation in violations)
    rejected = [attempt for attempt in trace.attempts if attempt.violations or attempt.error]
    if rejected:
        lines.append("attempts that were rejected or failed:")
        for attempt in rejected:
            problems = [*attempt.violations, *([attempt.error] if attempt.error else [])]
            lines.append(f"  {attempt.step_id} #{attempt.number}: " + "; ".join(problems))
    pending = [review for review in trace.reviews if review.status == "pending"]
    lines.extend(
        f"waiting for a person: {review.question!r} (review {review.review_id}; "
        f"answer with `stratum review answer {review.review_id} --value JSON`)"
        for review in pending
    )
    return lines


def _plain(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _all_runs(
    store: RunStore,
    *,
    flow: str | None,
    status: RunStatus | None,
    since: float | None,
    until: float | None,
    batch: str | None = None,
) -> Iterator[RunRecord]:
    cursor: str | None = None
    while True:
        page = store.list_runs(
            flow=flow, status=status, since=since, until=until, limit=_PAGE, cursor=cursor, batch=batch
        )
        yield from page.runs
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _summary(args: argparse.Namespace, store: RunStore, since: float | None, until: float | None) -> int:
    runs = _all_runs(store, flow=args.flow, status=args.status, since=since, until=until, batch=args.batch)
    summary = summarize(runs, since=since, until=until)
    if args.format == "json":
        print(json.dumps(summary.to_json_dict(), indent=2, ensure_ascii=False))
        return EXIT_OK
    console = _console()
    for table in _summary_tables(summary):
        console.print(table)
    return EXIT_OK


def _summary_tables(summary: Summary) -> list[Table]:
    """The tables `stratum runs summary` prints: runs per flow (with a total row), then failures by error type."""
    overall = summary.overall
    flows = Table(
        title=f"{overall.runs} run{'s' if overall.runs != 1 else ''}, {describe_period(summary.since, summary.until)}"
    )
    for column in ("flow", "runs", "ok", "failed", "other", "failure rate", "p50", "p95", "tokens", "cost $"):
        flows.add_column(column, justify="left" if column == "flow" else "right", no_wrap=True)
    rows = [*summary.flows.items(), ("all flows", overall)] if summary.flows else []
    for index, (name, stats) in enumerate(rows):
        succeeded, failed = stats.by_status.get("succeeded", 0), stats.by_status.get("failed", 0)
        cost = f"{stats.cost_usd:.6f}" + (f" (+{stats.cost_unknown_runs} unpriced)" if stats.cost_unknown_runs else "")
        flows.add_row(
            name,
            str(stats.runs),
            str(succeeded),
            str(failed),
            str(stats.runs - succeeded - failed),
            _rate(stats.failure_rate),
            _ms(stats.p50_ms),
            _ms(stats.p95_ms),
            f"{stats.tokens:,}",
            cost,
            style="bold" if index == len(rows) - 1 else None,
            end_section=index == len(rows) - 2,
        )
    failures = Table(title="failures by error type")
    for column in ("error type", "runs", "share of ended runs"):
        failures.add_column(column, justify="left" if column == "error type" else "right")
    for error in overall.failures:
        failures.add_row(error.type, str(error.runs), _rate(error.rate))
    return [flows, failures] if overall.failures else [flows]
