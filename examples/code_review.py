# mypy: disable-error-code="empty-body"
"""Code review: three reviewers in parallel (two must finish), a judge merges them; or two agents debate it.

Exports as a plan: `stratum export examples.code_review -o plans/code_review_lib.stratum.yaml`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from stratum import Budget, contract, debate, flow, infer, parallel


@contract
class Review(BaseModel):
    """One reviewer's opinion."""

    focus: str
    verdict: Literal["approve", "request_changes"]
    findings: list[str] = Field(max_length=10)


@contract
class Verdict(BaseModel):
    """The decision, and why."""

    verdict: Literal["approve", "request_changes"]
    summary: str = Field(min_length=1)


@contract
class Argument(BaseModel):
    """One side of the debate."""

    position: Literal["ship", "hold"]
    reason: str


@infer(
    intent="Review the code for one concern only.",
    context=["Name concrete lines in findings.", "Approve only code you would merge."],
    ensure="result.focus == focus",
    retries=1,
)
def review(code: str, focus: str) -> Review:
    """One reviewer, one concern."""
    ...


@infer(
    intent="Merge the reviews into one verdict: request changes if any review found a real problem.",
    ensure="result.verdict == 'approve' or len(result.summary) > 0",
)
def judge(reviews: list[Review]) -> Verdict:
    """The reviews, merged."""
    ...


@infer(intent="Argue that the change should ship now, answering the other side's points.")
def optimist(topic: str, others: dict[str, Any]) -> Argument:
    """The case for shipping."""
    ...


@infer(intent="Argue that the change should wait, answering the other side's points.")
def critic(topic: str, others: dict[str, Any]) -> Argument:
    """The case for waiting."""
    ...


@infer(intent="Weigh the debate and decide.")
def decide(topic: str, arguments: dict[str, Any]) -> Verdict:
    """The debate, decided."""
    ...


@flow(budget=Budget(ms=90_000, usd=0.05))
async def review_code(code: str) -> Verdict:
    """Three reviewers in parallel; at least two must finish; a judge merges them."""
    reviews = await parallel(
        review(code, "security"),
        review(code, "style"),
        review(code, "performance"),
        require=2,
        validate="len(outputs) >= 2",
    )
    verdict = await judge(reviews)
    return verdict


@flow
async def ship_or_hold(change: str) -> Verdict:
    """Two agents argue whether to ship a change; a third decides."""
    verdict = await debate(agents=[optimist, critic], topic=change, rounds=2, synthesize=decide, converge_on="position")
    return verdict
