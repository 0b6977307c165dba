# mypy: disable-error-code="empty-body"
"""Support-ticket triage: classify the tone, draft a reply, and ask a person before it is sent.

The library form of `plans/support_triage.stratum.yaml`. Run it with a model configured (STRATUM_MODEL, ...):

    python -m examples.support_ticket ada@example.com "The export is broken again. Third time this week."

or export it as a plan and serve it: `stratum export examples.support_ticket -o plans/support.stratum.yaml`.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, Field

from stratum import (
    Budget,
    ReviewAnswer,
    ReviewRequest,
    await_human,
    compute,
    configure,
    contract,
    flow,
    infer,
    opaque,
    refine,
    run,
)


@contract
class Sentiment(BaseModel):
    """The tone of a ticket."""

    label: Literal["positive", "negative", "neutral"]
    confidence: float = Field(ge=0, le=1)
    reasoning: str


@contract
class Customer(BaseModel):
    """A customer of the directory."""

    email: str
    name: str
    plan: Literal["free", "team", "enterprise"]
    open_tickets: int = Field(ge=0)


@contract
class Ticket(BaseModel):
    """A ticket, with its customer."""

    text: str = Field(min_length=1)
    customer_note: opaque[str] | None = None  # reaches the model only as a JSON attachment
    customer: Customer


@contract
class Reply(BaseModel):
    """A reply to send."""

    body: str = Field(min_length=1, max_length=1200)
    tone: Literal["formal", "warm"]


@contract
class Approval(BaseModel):
    """What a person decided about a reply."""

    decision: Literal["send", "revise", "discard"] = Field(description="What to do with the reply")
    note: str | None = Field(default=None, description="Anything the agent should know")


@contract
class Delivery(BaseModel):
    """What happened to the reply."""

    sent: bool
    reference: str
    body: str


_CUSTOMERS = {
    "ada@example.com": {"name": "Ada Lovelace", "plan": "enterprise", "open_tickets": 1},
    "grace@example.com": {"name": "Grace Hopper", "plan": "team", "open_tickets": 0},
}


@compute
def lookup_customer(email: str) -> Customer:
    """Find the customer in the directory (a stand-in for a CRM lookup)."""
    found = _CUSTOMERS.get(email.strip().lower())
    if found is None:
        return Customer(email=email, name=email.split("@")[0], plan="free", open_tickets=0)
    return Customer.model_validate({"email": email, **found})


@infer(
    intent="Classify the emotional tone of a support ticket.",
    context=["Treat sarcasm as negative.", "When genuinely ambiguous, use neutral."],
    given="len(text.strip()) > 0",
    ensure=["result.confidence > 0.7", "len(result.reasoning) <= 400"],
    retries=3,
    temperature=0.2,
    budget=Budget(ms=8000, tokens=2000),
    cache="session",
)
def classify(text: str) -> Sentiment:
    """The tone of a ticket, with a confidence the flow can rely on."""
    ...


@refine(
    until="sentiment.label != 'negative' or 'sorry' in result.body.lower()",
    feedback="'A reply to an unhappy customer must apologise.'",
    max_iterations=3,
)
@infer(
    intent="Draft a short, helpful reply to the ticket, addressed to the customer by name.",
    ensure=["len(result.body) <= 600", "all(first in result.body for first in ticket.customer.name.split()[:1])"],
    budget=Budget(ms=20000),
)
def draft_reply(ticket: Ticket, sentiment: Sentiment) -> Reply:
    """A reply that names the customer, and apologises to an unhappy one."""
    ...


@compute
def send_reply(email: str, reply: Reply, decision: str) -> Delivery:
    """Queue the reply in the outbox when the person said send; the reference is derived from the content."""
    if decision != "send":
        return Delivery(sent=False, reference="none", body=reply.body)
    digest = hashlib.sha256(f"{email}\n{reply.body}".encode()).hexdigest()[:8]
    return Delivery(sent=True, reference=f"MSG-{digest}", body=reply.body)


@flow(budget=Budget(ms=120_000, usd=0.02))
async def triage(email: str, text: str, customer_note: str | None = None) -> Delivery:
    """Classify a ticket, draft a reply, and ask a person before it is sent."""
    customer = await lookup_customer(email)
    sentiment = await classify(text)
    ticket = Ticket(text=text, customer_note=customer_note, customer=customer)
    reply = await draft_reply(ticket=ticket, sentiment=sentiment)
    approval = await await_human(
        question="Send this reply to the customer?",
        context={"reply": reply, "customer": customer},
        decision_type=Approval,
        options=["send", "discard"],
        timeout=timedelta(hours=24),
        on_timeout={"decision": "discard", "note": "no answer within a day"},
    )
    delivery = await send_reply(email=email, reply=reply, decision=approval.value.decision)
    return delivery


class _Console:
    """Asks the person at the terminal (what `python -m examples.support_ticket` uses)."""

    async def ask(self, request: ReviewRequest) -> ReviewAnswer:
        print(request.question, dict(request.context), file=sys.stderr)
        answer = input("send or discard? ").strip() or "discard"
        return ReviewAnswer(action="accept", value={"decision": answer}, reviewer="console")


if __name__ == "__main__":  # pragma: no cover - needs a model
    configure(review_sink=_Console())
    print(run(triage, sys.argv[1], sys.argv[2]).model_dump_json(indent=2))
