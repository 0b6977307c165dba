"""Every example in examples/ runs against the test LLM, with the outputs and traces it promises."""

from __future__ import annotations

import pytest
from library_helpers import ScriptedSink, last_trace, steps

from examples import code_review, digest, support_ticket
from stratum_core.engine import Engine, ReviewAnswer
from stratum_core.testing import FakeLLM, Fault


def script_support(fake: FakeLLM, name: str = "Ada") -> None:
    fake.add_rule("emotional tone", {"label": "negative", "confidence": 0.95, "reasoning": "export broken"})
    fake.add_rule("Draft a short", {"body": f"Sorry {name}, we are fixing the export.", "tone": "warm"})


async def test_the_support_ticket_example_sends_an_approved_reply(
    engine: Engine, fake_llm: FakeLLM, sink: ScriptedSink
) -> None:
    script_support(fake_llm)
    sink.answers.append(ReviewAnswer(action="accept", value={"decision": "send"}, reviewer="agent-1"))
    delivery = await support_ticket.triage("ada@example.com", "Export is broken.", customer_note="VIP, be quick")
    assert delivery.sent and delivery.reference.startswith("MSG-") and delivery.body.startswith("Sorry Ada")
    [asked] = sink.asked
    assert asked.question == "Send this reply to the customer?"
    assert asked.context["customer"] == {
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "plan": "enterprise",
        "open_tickets": 1,
    }
    draft_request = next(r for r in fake_llm.requests if "Draft a short" in r["messages"][0]["content"])
    assert "VIP, be quick" in draft_request["messages"][2]["content"]  # the opaque note: only in the attachment
    assert "VIP" not in draft_request["messages"][1]["content"]
    trace = last_trace(engine, "triage")
    assert [s[0] for s in steps(trace)] == ["customer", "sentiment", "reply", "approval", "delivery"]
    assert trace.run.cost_usd > 0


async def test_the_support_ticket_example_keeps_a_discarded_reply(
    engine: Engine, fake_llm: FakeLLM, sink: ScriptedSink
) -> None:
    script_support(fake_llm, "Grace")
    sink.answers.append(ReviewAnswer(action="accept", value={"decision": "discard", "note": "tone"}))
    delivery = await support_ticket.triage("grace@example.com", "Where is my invoice?")
    assert not delivery.sent and delivery.reference == "none"


async def test_the_code_review_example_merges_parallel_reviews(engine: Engine, fake_llm: FakeLLM) -> None:
    for focus in ("security", "style", "performance"):
        fake_llm.add_rule(f'focus: "{focus}"', {"focus": focus, "verdict": "approve", "findings": []})
    fake_llm.add_rule("Merge the reviews", {"verdict": "approve", "summary": "all clear"})
    verdict = await code_review.review_code("def f(): return 1")
    assert verdict == code_review.Verdict(verdict="approve", summary="all clear")
    judge_request = next(r for r in fake_llm.requests if "Merge the reviews" in r["messages"][0]["content"])
    assert judge_request["messages"][1]["content"].count('"verdict": "approve"') == 3


async def test_the_code_review_example_debates_a_release(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule("ship now", {"position": "ship", "reason": "tests pass"})
    fake_llm.add_rule("should wait", {"position": "hold", "reason": "no rollback plan"})
    fake_llm.add_rule("Weigh the debate", {"verdict": "request_changes", "summary": "add a rollback plan"})
    verdict = await code_review.ship_or_hold("Release 2.0 on Friday")
    assert verdict.verdict == "request_changes"
    assert last_trace(engine, "ship_or_hold").steps[0].attributes == {"rounds": 2, "converged": False}


async def test_the_digest_example_refines_votes_and_samples(engine: Engine, fake_llm: FakeLLM) -> None:
    text = "The billing page has been down since the morning; customers cannot pay their invoices at all."
    fake_llm.add_rule("Summarize", {"text": text, "key_points": ["down"]}, times=1)
    fake_llm.add_rule("Summarize", {"text": "Billing is down.", "key_points": ["billing down"]})
    fake_llm.add_rule("topic", {"label": "outage", "confidence": 0.8})
    fake_llm.add_rule("urgent", {"value": "high"})
    result = await digest.digest(text)
    assert result == digest.Digest(summary="Billing is down.", topic="outage", urgency="high", agreement=1.0)
    refine_round = [r for r in fake_llm.requests if "Summarize" in r["messages"][0]["content"]][1]
    assert f"Too long ({len(text)} characters): halve it." in refine_round["messages"][1]["content"]
    attributes = {s.step_id: s.attributes for s in last_trace(engine, "digest").steps}
    assert attributes["summary"]["iterations"] == 2
    assert attributes["label"]["quorum"] == {"votes": {"outage": 3}, "winner": "outage", "threshold": 2, "failed": 0}
    assert attributes["how_urgent"]["agreement"] == 1.0


@pytest.mark.parametrize("winner", ["fast", "careful"])
async def test_the_digest_example_races_two_titles(engine: Engine, fake_llm: FakeLLM, winner: str) -> None:
    fake_llm.add_rule("short title" if winner == "fast" else "careful title", {"value": winner})
    fake_llm.add_rule("title", Fault(kind="bad_request"))
    assert await digest.headline("Billing is down") == winner
