"""Asking a person at the console: the ReviewSink of `stratum run`."""

from __future__ import annotations

import getpass
import json
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

import anyio
import anyio.from_thread
import anyio.lowlevel
from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress

from stratum_core.engine import ReviewAnswer, ReviewRequest

__all__ = ["ConsoleReviewSink"]


def _parse(raw: str, schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("y", "yes", "true", "1"):
            return True
        if lowered in ("n", "no", "false", "0"):
            return False
        raise ValueError("answer yes or no")
    if kind == "integer":
        return int(raw)
    if kind == "number":
        return float(raw)
    return raw


class ConsoleReviewSink:
    """Asks each decision field at the terminal. Without a terminal it returns None, so the run pauses."""

    def __init__(
        self,
        console: Console | None = None,
        stdin: TextIO | None = None,
        *,
        live: Progress | None = None,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.stdin = stdin or sys.stdin
        self.live = live  # a live progress display, paused while the person answers

    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None:
        """Show the question and its context, then read each field; an empty required answer declines.

        The form is read in a daemon thread: when the step times out (or the run is cancelled) the question is
        abandoned, and the process can end without anyone pressing Enter.
        """
        if not self.stdin.isatty():
            return None
        done = anyio.Event()
        outcome: list[ReviewAnswer | BaseException] = []
        token = anyio.lowlevel.current_token()

        def read() -> None:
            try:
                outcome.append(self._ask_blocking(request))
            except BaseException as error:  # handed to the waiting task, which raises it
                outcome.append(error)
            try:
                anyio.from_thread.run_sync(done.set, token=token)
            except RuntimeError:  # the event loop is gone: nobody waits for this answer any more
                pass

        threading.Thread(target=read, name=f"stratum review {request.review_id}", daemon=True).start()
        try:
            await done.wait()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                self.console.print(f"\n[yellow]no answer to {request.question!r} in time[/]")
                if self.live is not None:
                    self.live.start()
            raise
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _ask_blocking(self, request: ReviewRequest) -> ReviewAnswer:
        if self.live is None:
            return self._ask_form(request)
        self.live.stop()  # a redrawing display would overwrite the prompt the person types after
        try:
            return self._ask_form(request)
        finally:
            self.console.print()  # restarting the display redraws over the line below the cursor, not the answers
            self.live.start()

    def _ask_form(self, request: ReviewRequest) -> ReviewAnswer:
        context = json.dumps(dict(request.context), indent=2, ensure_ascii=False, default=str)
        self.console.print(Panel(context, title=f"[bold]{request.question}[/] (step {request.step_id})"))
        properties: Mapping[str, Any] = request.schema.get("properties", {})
        required = set(request.schema.get("required", []))
        value: dict[str, Any] = {}
        for name, field_schema in properties.items():
            choices = field_schema.get("enum")
            label = field_schema.get("description") or name
            if choices:
                hint = f" [{'/'.join(map(str, choices))}]"
            else:
                hint = " [y/n]" if field_schema.get("type") == "boolean" else ""
            while True:
                self.console.print(f"{label}{hint}: ", end="", markup=False, highlight=False)
                raw = self.stdin.readline()
                if raw == "":  # end of input: the person left
                    return ReviewAnswer(action="cancel")
                raw = raw.rstrip("\n")
                if not raw:
                    if name in required:
                        return ReviewAnswer(action="decline", reviewer=getpass.getuser())
                    break
                try:
                    parsed = _parse(raw, field_schema)
                except ValueError as error:
                    self.console.print(f"[red]{error}[/]")
                    continue
                if choices and parsed not in choices:
                    self.console.print(f"[red]choose one of {', '.join(map(str, choices))}[/]")
                    continue
                value[name] = parsed
                break
        return ReviewAnswer(action="accept", value=value, reviewer=getpass.getuser())
