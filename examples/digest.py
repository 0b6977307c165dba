# mypy: disable-error-code="empty-body"
"""A document digest, written for Python only: callables as conditions, quorum, samples, a race, plain code.

This flow does not export (its conditions are Python callables and it builds its result in Python); it shows what
the library adds on top of what a plan can say. `stratum export examples.digest` names each such construct.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from stratum import Probabilistic, contract, flow, infer, opaque, race, refine


@contract
class Summary(BaseModel):
    """A short summary and its key points."""

    text: str
    key_points: list[str]


@contract
class Topic:  # a plain annotated class: @contract makes it a dataclass
    """What the document is about."""

    label: Literal["billing", "outage", "feature", "other"]
    confidence: float


@contract
class Digest(BaseModel):
    """Everything the digest found."""

    summary: str
    topic: str
    urgency: str
    agreement: float


@refine(
    until=lambda summary, text: len(summary.text) < len(text) / 2,
    feedback=lambda summary: f"Too long ({len(summary.text)} characters): halve it.",
    max_iterations=3,
)
@infer(intent="Summarize the document in two sentences.", ensure=lambda summary: len(summary.key_points) >= 1)
def summarize(text: opaque[str]) -> Summary:
    """The document, in two sentences."""
    ...


@infer(intent="Name the document's topic.", quorum=3, agree_on="label", threshold=2)
def topic(text: str) -> Topic:
    """The topic three answers agree on."""
    ...


@infer(intent="Rate how urgent the document is.", stable=False, samples=3, temperature=0.7)
def urgency(text: str) -> Probabilistic[Literal["low", "medium", "high"]]:
    """How urgent, sampled three times."""
    ...


@infer(intent="Give the document a short title.", model=None)
def title_fast(text: str) -> str:
    """A quick title."""
    ...


@infer(intent="Give the document a short, careful title.")
def title_careful(text: str) -> str:
    """A careful title."""
    ...


@flow
async def digest(text: str) -> Digest:
    """Summarize a document, name its topic by vote, and sample how urgent it is."""
    summary = await summarize(text)
    label = await topic(text)
    how_urgent = await urgency(text)
    return Digest(
        summary=summary.text, topic=label.label, urgency=how_urgent.most_likely(), agreement=how_urgent.agreement
    )


@flow
async def headline(text: str) -> str:
    """Whichever title comes first."""
    title = await race(title_fast(text), title_careful(text))
    return title
