"""`stratum review list|answer`: the decisions paused runs wait for, answered from the command line.

`answer` records the person's decision in the run store and (unless `--no-resume`) continues the run here, from
its checkpoint; a server sharing the store sees the run finish in its trace resource.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stratum_core.cli import Command
from stratum_core.cli._model_options import add_force_model_option, model_choice

if TYPE_CHECKING:
    from stratum_core.store import RunStore

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    store_help = "run store: a SQLite file or a postgresql:// URL (default: $STRATUM_STORE or .stratum/stratum.db)"
    listing = sub.add_parser("list", help="List reviews (pending ones by default).")
    listing.add_argument("--store", metavar="FILE", help=store_help)
    listing.add_argument("--run", metavar="RUN_ID", help="only the reviews of this run")
    listing.add_argument("--all", action="store_true", help="answered and closed reviews too")
    listing.add_argument("--json", action="store_true", help="print JSON")
    answer = sub.add_parser("answer", help="Answer a review and resume its run.")
    answer.add_argument("review_id")
    choice = answer.add_mutually_exclusive_group(required=True)
    choice.add_argument("--value", metavar="JSON", help="accept with this decision (JSON matching the schema)")
    choice.add_argument("--decline", action="store_true", help="the person said no")
    choice.add_argument("--cancel", action="store_true", help="the person did not decide")
    answer.add_argument("--reviewer", help="who decided (default: $USER)")
    answer.add_argument("--rationale", help="why, in their words")
    answer.add_argument("--no-resume", action="store_true", help="only record the answer")
    answer.add_argument("--store", metavar="FILE", help=store_help)
    answer.add_argument("--model", metavar="M", help="LiteLLM model for infer steps (default: $STRATUM_MODEL)")
    answer.add_argument("--api-base", metavar="URL", help="OpenAI-compatible base URL (default: $STRATUM_API_BASE)")
    add_force_model_option(answer)


def _open_store(args: argparse.Namespace) -> RunStore | None:
    """The store `--store` or STRATUM_STORE names (a database URL, or a SQLite file that must exist), else None."""
    from server._app import open_store
    from server._config import ServerConfig, store_location

    config = ServerConfig.from_env()
    if args.store:
        config = ServerConfig(**{**config.__dict__, **store_location(args.store)})
    if config.store_url is None and (config.store_path is None or not config.store_path.exists()):
        print(f"stratum review: no run store at {config.store_path}", file=sys.stderr)
        return None
    return open_store(config.store_path, url=config.store_url)


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds") if epoch else "-"


def _list(args: argparse.Namespace) -> int:
    opened = _open_store(args)
    if opened is None:
        return 1
    with closing(opened) as store:
        reviews = store.list_reviews(status=None if args.all else "pending", run_id=args.run)
        if args.json:
            print(json.dumps([r.model_dump(mode="json") for r in reviews], indent=2, ensure_ascii=False))
            return 0
        if not reviews:
            print("no pending reviews" if not args.all else "no reviews")
            return 0
        for review in reviews:
            run = store.get_run(review.run_id)
            schema = (review.request or {}).get("schema")
            print(f"{review.review_id}  {review.status}  run {review.run_id} ({run.flow if run else '?'})")
            print(f"  step:     {review.step_id}")
            print(f"  question: {review.question}")
            print(f"  asked:    {_when(review.created_at)}  deadline: {_when(review.deadline)}")
            print(f"  schema:   {json.dumps(schema, ensure_ascii=False)}")
            if review.action:
                answered = json.dumps(review.value, ensure_ascii=False)
                print(f"  answer:   {review.action} {answered} by {review.reviewer}")
    return 0


def _answer(args: argparse.Namespace) -> int:
    import os

    import anyio

    from server._catalog import argument_errors
    from server._elicitation import decision_schema, decision_value
    from stratum_core.engine import Engine, EngineConfig
    from stratum_core.plan._patterns import SchemaValidator
    from stratum_core.store import ReviewAction, RunBusy, StoreError

    opened = _open_store(args)
    if opened is None:
        return 1
    with closing(opened) as store:
        review = store.get_review(args.review_id)
        if review is None:
            print(f"stratum review: no review with id {args.review_id!r}", file=sys.stderr)
            return 1
        action: ReviewAction = "decline" if args.decline else "cancel" if args.cancel else "accept"
        value: Any = None
        if action == "accept":
            schema = decision_schema(review)
            try:
                value = decision_value(json.loads(args.value), schema)
            except ValueError as e:
                print(f"stratum review: --value is not JSON: {e}", file=sys.stderr)
                return 2
            errors = argument_errors(SchemaValidator(schema), value)
            if errors:
                print("stratum review: the answer does not match the decision schema:", file=sys.stderr)
                for line in errors:
                    print(f"  {line}", file=sys.stderr)
                return 2
        try:
            store.answer_review(
                review.review_id,
                action=action,
                value=value,
                reviewer=args.reviewer or os.environ.get("USER") or None,
                rationale=args.rationale,
                answered_by="person",  # someone typed this command
                channel="cli",
            )
        except StoreError as e:
            print(f"stratum review: {e}", file=sys.stderr)
            return 1
        print(f"recorded: {action} for review {review.review_id} (run {review.run_id})")
        run = store.get_run(review.run_id)
        if args.no_resume or run is None or run.status != "paused":
            return 0
        model, forced = model_choice(args)
        config = EngineConfig.from_env(model=model, api_base=args.api_base, force_model=forced)
        engine = Engine(store=store, config=config)
        try:
            result = anyio.run(lambda: engine.resume(review.run_id))
        except RunBusy as e:  # a server advances it: it goes on with the answer recorded here
            print(f"stratum review: {e}", file=sys.stderr)
            return 0
        print(f"run {result.run_id}: {result.status}")
        if result.status == "succeeded":
            print(json.dumps(result.output, indent=2, ensure_ascii=False, default=str))
        elif result.status == "paused" and result.review is not None:
            print(f"waiting for review {result.review.review_id}: {result.review.question}")
        elif result.error is not None:
            print(json.dumps(result.error.to_dict(), indent=2, ensure_ascii=False, default=str))
        return 0 if result.status in ("succeeded", "paused") else 1


def _run(args: argparse.Namespace) -> int:
    if args.review_command == "list":
        return _list(args)
    return _answer(args)


COMMAND = Command(
    name="review",
    help="List the human decisions paused runs wait for, and answer them (the run then resumes).",
    configure=_configure,
    run=_run,
)
