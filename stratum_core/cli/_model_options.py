"""Model options shared by the commands: `--force-model` and `--models FILE`.

`--force-model` (run, resume, serve, review): one model for every infer step, whatever the plan pins.
`--models FILE` (run, resume, serve, optimize): the models file.
"""

from __future__ import annotations

import argparse

__all__ = ["add_force_model_option", "add_models_file_option", "model_choice"]

_WITH_MODEL = object()  # `--force-model` given without a model: force the --model / $STRATUM_MODEL one


def add_force_model_option(parser: argparse.ArgumentParser) -> None:
    """Add `--force-model [MODEL]` (after the positional arguments when given without MODEL)."""
    parser.add_argument(
        "--force-model",
        nargs="?",
        const=_WITH_MODEL,
        metavar="MODEL",
        help="use MODEL (or, without one, the --model / $STRATUM_MODEL one) for every infer step, whatever model "
        "the plan names: e.g. the one local model you have",
    )


def add_models_file_option(parser: argparse.ArgumentParser) -> None:
    """Add `--models FILE`: how self-hosted models take the output schema, and their prices."""
    parser.add_argument(
        "--models",
        metavar="FILE",
        help="models file: how self-hosted models take the output schema, and their prices (default: "
        "$STRATUM_MODELS; see docs/self-hosted-models.md)",
    )


def model_choice(args: argparse.Namespace) -> tuple[str | None, bool | None]:
    """The model the options name (None: the environment's) and whether it is forced (None: not said)."""
    forced = getattr(args, "force_model", None)
    if forced is None:
        return args.model, None
    if forced is _WITH_MODEL:
        return args.model, True
    return str(forced), True
