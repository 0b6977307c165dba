"""Asking a person at the console: the form, re-asking on bad answers, decline, cancel, and no terminal."""

from __future__ import annotations

import io

from rich.console import Console

from stratum_core.cli._console_review import ConsoleReviewSink
from stratum_core.engine import ReviewRequest

REQUEST = ReviewRequest(
    review_id="r1",
    run_id="run",
    step_id="approval",
    question="Send this reply?",
    schema={
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["send", "discard"], "description": "What to do"},
            "urgent": {"type": "boolean"},
            "note": {"type": "string"},
        },
        "required": ["decision", "urgent"],
    },
    context={"reply": "Dear customer"},
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def sink(typed: str) -> tuple[ConsoleReviewSink, io.StringIO]:
    shown = io.StringIO()
    return ConsoleReviewSink(Console(file=shown, width=100), stdin=Terminal(typed)), shown


async def test_each_field_is_asked_and_bad_answers_are_asked_again() -> None:
    console_sink, shown = sink("sned\nsend\nmaybe\ny\nthanks\n")
    answer = await console_sink.ask(REQUEST)
    assert answer is not None and answer.action == "accept"
    assert answer.value == {"decision": "send", "urgent": True, "note": "thanks"}
    text = shown.getvalue()
    assert "What to do [send/discard]: " in text and "choose one of send, discard" in text
    assert "answer yes or no" in text and "Dear customer" in text


async def test_an_empty_required_answer_declines_and_end_of_input_cancels() -> None:
    declined = await sink("\n")[0].ask(REQUEST)
    assert declined is not None and declined.action == "decline"
    cancelled = await sink("send\n")[0].ask(REQUEST)
    assert cancelled is not None and cancelled.action == "cancel"


async def test_without_a_terminal_nobody_is_asked_and_the_run_pauses() -> None:
    answer = await ConsoleReviewSink(Console(file=io.StringIO()), stdin=io.StringIO("send\n")).ask(REQUEST)
    assert answer is None
