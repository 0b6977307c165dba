"""Deterministic helpers for support_triage.stratum.yaml: a customer directory and a keyword sentiment scorer.

They stand in for a CRM lookup and a cheap classifier: small, pure, and fast enough to run in tests.
"""

from __future__ import annotations

import hashlib

_CUSTOMERS = {
    "ada@example.com": {"name": "Ada Lovelace", "plan": "enterprise", "open_tickets": 1},
    "grace@example.com": {"name": "Grace Hopper", "plan": "team", "open_tickets": 0},
}

_NEGATIVE = ("refund", "broken", "angry", "terrible", "cancel", "worst", "never again")
_POSITIVE = ("thanks", "thank you", "great", "love", "perfect", "awesome")


def lookup_customer(email: str) -> dict[str, object]:
    """The customer record for `email`; unknown addresses get a free-plan record with no history."""
    found = _CUSTOMERS.get(email.strip().lower())
    if found is None:
        return {"email": email, "name": email.split("@")[0], "plan": "free", "open_tickets": 0}
    return {"email": email, **found}


def keyword_sentiment(text: str) -> dict[str, object]:
    """A Sentiment from keyword counts: confident only when one side clearly dominates."""
    lowered = text.lower()
    negative = sum(lowered.count(word) for word in _NEGATIVE)
    positive = sum(lowered.count(word) for word in _POSITIVE)
    if negative == positive:
        return {"label": "neutral", "confidence": 0.6, "reasoning": "no clear sentiment keywords"}
    label = "negative" if negative > positive else "positive"
    margin = abs(negative - positive) / (negative + positive)
    reasoning = f"{negative} negative, {positive} positive keywords"
    return {"label": label, "confidence": round(0.5 + margin / 2, 2), "reasoning": reasoning}


def queue_reply(email: str, reply: dict[str, str]) -> dict[str, object]:
    """Queue `reply` for `email` and return its delivery record; the reference is derived from the content."""
    digest = hashlib.sha256(f"{email}\n{reply['body']}".encode()).hexdigest()[:8]
    return {"sent": True, "reference": f"MSG-{digest}", "body": reply["body"]}
