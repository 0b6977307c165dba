"""`stratum optimize PLAN FUNCTION --data examples.jsonl --out FILE`: learn a function's context (DSPy)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stratum_core.cli._main import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command
from stratum_core.cli._model_options import add_models_file_option
from stratum_core.cli._run import add_price_option
from stratum_core.errors import PlanError, StratumError
from stratum_core.llm._structured import OutputProfile

__all__ = ["COMMAND"]

_PHASES = {
    "baseline": "scoring the baseline on the held-out split",
    "optimizing": "optimizing (model calls)",
    "optimized": "scoring the optimized program",
}


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="the .stratum.yaml file")
    parser.add_argument("function", help="the infer function to optimize")
    parser.add_argument("--data", required=True, help='labelled examples, JSON lines: {"input": {...}, "label": ...}')
    parser.add_argument("--out", required=True, help="the learned-context file to write (name it in `learned:`)")
    parser.add_argument("--optimizer", choices=["bootstrap", "gepa", "mipro"], default="bootstrap")
    parser.add_argument("--model", help="the model the function runs on (default: $STRATUM_MODEL, else the function's)")
    parser.add_argument("--api-base", help="base URL of an OpenAI-compatible server (default: $STRATUM_API_BASE)")
    add_models_file_option(parser)
    add_price_option(parser)
    parser.add_argument(
        "--reflection-model", help="gepa/mipro: the model that proposes instructions (default: --model)"
    )
    parser.add_argument("--train-split", type=float, default=0.7, help="share of examples to learn from (default 0.7)")
    parser.add_argument(
        "--metric",
        help="a sandboxed expression on result, label and the inputs, true/false or 0..1 (default: the answer "
        "matches the label)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/test split and the optimizer")
    parser.add_argument("--max-demos", type=int, default=4, help="bootstrap/mipro: most demonstrations (default 4)")
    parser.add_argument("--max-calls", type=int, default=60, help="gepa: most metric calls (default 60)")


def _run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        import dspy  # noqa: F401
    except ImportError:
        console.print("[red]error[/]: `stratum optimize` needs DSPy: pip install 'stratum[optimize]'")
        return EXIT_USAGE
    from stratum_core.optimize._optimizer import OptimizeOptions, optimize_function
    from stratum_core.plan import InferFunction, load_plan
    from stratum_core.plan._learned import learned_yaml

    try:
        plan = load_plan(args.plan)
    except PlanError as error:
        console.print(str(error))
        return EXIT_USAGE
    fn = plan.functions.get(args.function)
    model = args.model or os.environ.get("STRATUM_MODEL") or (fn.model if isinstance(fn, InferFunction) else None)
    if not model:
        console.print("[red]error[/]: no model: pass --model (LiteLLM syntax, or `local` for the embedded model)")
        return EXIT_USAGE
    try:
        profiles, prices = _model_settings(args)
    except (ValueError, StratumError) as error:  # a bad models file, --price or STRATUM_PRICES
        console.print(f"[red]error[/]: {error}")
        return EXIT_USAGE
    options = OptimizeOptions(
        output_profiles=profiles,
        prices=prices,
        optimizer=args.optimizer,
        model=model,
        api_base=args.api_base or os.environ.get("STRATUM_API_BASE") or None,
        api_key=os.environ.get("STRATUM_API_KEY") or None,
        reflection_model=args.reflection_model,
        train_split=args.train_split,
        metric=args.metric,
        seed=args.seed,
        max_demos=args.max_demos,
        max_metric_calls=args.max_calls,
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(_PHASES.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        try:
            report = optimize_function(plan, args.function, args.data, options=options, progress=progress)
        except StratumError as error:
            bar.stop()
            console.print(f"[red]error[/]: {error}")
            return EXIT_USAGE
        except Exception as error:  # DSPy or the provider failed mid-way: say what, nothing is written
            bar.stop()
            console.print(f"[red]failed[/]: {type(error).__name__}: {error}")
            return EXIT_FAILED
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(learned_yaml(report.learned), encoding="utf-8")
    cost = "unknown" if report.spent.cost_usd is None else f"${report.spent.cost_usd:.4f}"
    print(
        f"held-out accuracy: baseline {report.baseline:.3f} -> optimized {report.optimized:.3f} "
        f"({report.test} test / {report.train} train examples)"
    )
    print(
        f"spent: {report.spent.calls} model calls, {report.spent.tokens_in}/{report.spent.tokens_out} tokens "
        f"in/out, cost {cost}"
    )
    learned = report.learned
    print(
        f"wrote {out}: {len(learned.demos)} demonstration(s), "
        f"{'learned instructions' if learned.instructions else 'the function context unchanged'}; "
        f"name it in the plan with `learned: {os.path.relpath(out, Path(args.plan).parent)}`"
    )
    if report.optimized < report.baseline:
        console.print("[yellow]warning[/]: the optimized program scored lower than the baseline; review before use")
    return EXIT_OK


def _model_settings(args: argparse.Namespace) -> tuple[dict[str, OutputProfile], dict[str, tuple[float, float]]]:
    """The models file's output profiles, and the price table (`--price` over $STRATUM_PRICES over the file's)."""
    from stratum_core.cli._run import prices_of
    from stratum_core.engine._types import budget_settings, configured_models_file
    from stratum_core.llm._models_file import price_table

    models = configured_models_file(args.models, os.environ)
    prices = price_table(
        models_file=models.prices if models is not None else None,
        environment=budget_settings(os.environ).get("prices"),
        command_line=prices_of(args),
    )
    return (models.profiles if models is not None else {}), prices


COMMAND = Command(
    name="optimize",
    help="Learn an infer function's context (instructions, demonstrations) from labelled examples with DSPy.",
    configure=_configure,
    run=_run,
)
