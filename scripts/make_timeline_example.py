"""Write docs/timeline-example.svg: a real run with a parallel group, a retry and a wait for a person.

The run goes through the engine, LiteLLM and the test LLM (a local OpenAI-compatible server with scripted answers
and latency), so the picture shows recorded times, tokens and cost, not drawn ones. Usage:

    .venv/bin/python scripts/make_timeline_example.py [OUT.svg]
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import sys
from pathlib import Path

import anyio

from stratum_core.engine import Engine, EngineConfig, ReviewAnswer, ReviewRequest
from stratum_core.llm import LiteLLMClient, register_model
from stratum_core.observability import render_timeline_svg
from stratum_core.plan import load_plan_text
from stratum_core.store import MemoryRunStore, Trace
from stratum_core.testing import FakeLLM, Reply

OUT = Path(__file__).resolve().parent.parent / "docs" / "timeline-example.svg"

PLAN = """
version: "1"
contracts:
  Summary:
    text: {type: string}
    risk: {type: string, enum: [low, medium, high]}
  Review:
    verdict: {type: string, enum: [approve, changes]}
    confidence: {type: number, minimum: 0, maximum: 1}
  Approval:
    approved: {type: boolean}
functions:
  summarize:
    mode: infer
    intent: Summarize the change and rate its risk.
    input: {diff: {type: string}}
    output: Summary
  review:
    mode: infer
    intent: Review the change for one concern.
    input: {summary: {type: string}, focus: {type: string}}
    output: Review
    ensure: ["result.confidence >= 0.6"]
    retries: 2
  approve:
    mode: human
    question: Merge this change?
    input: {summary: {type: string}}
    output: Approval
  decide:
    mode: compute
    input: {approved: {type: boolean}}
    output: {type: string}
    expr: "'merge' if approved else 'hold'"
flows:
  review_change:
    input: {diff: {type: string}}
    output: {type: string}
    steps:
      - {id: summary, function: summarize, inputs: {diff: $.input.diff}}
      - id: reviews
        parallel:
          require: all
          steps:
            - {id: security, function: review, inputs: {summary: $.steps.summary.output.text, focus: security}}
            - {id: style, function: review, inputs: {summary: $.steps.summary.output.text, focus: style}}
            - {id: tests, function: review, inputs: {summary: $.steps.summary.output.text, focus: tests}}
      - {id: approval, function: approve, depends_on: [reviews], inputs: {summary: $.steps.summary.output.text}}
      - {id: decision, function: decide, inputs: {approved: $.steps.approval.output.approved}}
"""


class _Reviewer:
    """A person who answers after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def ask(self, request: ReviewRequest) -> ReviewAnswer | None:
        await anyio.sleep(self.delay)
        return ReviewAnswer(action="accept", value={"approved": True}, reviewer="ann", rationale="looks safe")


def _script(fake: FakeLLM, latency: float) -> None:
    fake.latency = latency
    fake.add_rule(
        "Summarize",
        Reply(
            json={"text": "Adds rate limiting to the login endpoint.", "risk": "medium"},
            prompt_tokens=612,
            completion_tokens=48,
        ),
    )
    # The security review's first answer is not confident enough: the engine retries it with the violation.
    fake.add_rule(
        "security",
        Reply(json={"verdict": "approve", "confidence": 0.42}, prompt_tokens=455, completion_tokens=31),
        times=1,
    )
    fake.add_rule(
        "security", Reply(json={"verdict": "approve", "confidence": 0.88}, prompt_tokens=521, completion_tokens=33)
    )
    fake.add_rule(
        "style",
        Reply(
            json={"verdict": "approve", "confidence": 0.93},
            prompt_tokens=455,
            completion_tokens=29,
            latency=latency * 0.7,
        ),
    )
    fake.add_rule(
        "tests",
        Reply(
            json={"verdict": "changes", "confidence": 0.81},
            prompt_tokens=455,
            completion_tokens=35,
            latency=latency * 1.3,
        ),
    )


WARM_UP = """
version: "1"
functions:
  echo: {mode: infer, intent: Say hi., input: {}, output: {type: string}}
flows:
  hi: {input: {}, steps: [{id: hi, function: echo, inputs: {}}]}
"""


async def _warm_up(llm: LiteLLMClient, config: EngineConfig, fake: FakeLLM) -> None:
    """One call first, so that LiteLLM loading itself on its first call does not stretch the pictured step."""
    fake.enqueue(Reply(json="hi", latency=0.01))
    await Engine(store=MemoryRunStore(), llm=llm, config=config).run(load_plan_text(WARM_UP), "hi", {})


async def run_example(*, latency: float = 0.35, review_delay: float = 1.2) -> Trace:
    """Run the example flow against a fresh test LLM and return its recorded trace."""
    with FakeLLM(model_name="timeline-example") as fake:  # its own model name: prices are process-wide
        register_model(fake.model, input_cost_per_token=2.5e-6, output_cost_per_token=1e-5)
        _script(fake, latency)
        llm = LiteLLMClient(backoff_base=0.01, backoff_max=0.05)
        config = EngineConfig(model=fake.model, api_base=fake.url)
        await _warm_up(llm, config, fake)
        engine = Engine(store=MemoryRunStore(), llm=llm, config=config, review_sink=_Reviewer(review_delay))
        plan = load_plan_text(PLAN, source="review.stratum.yaml")
        result = await engine.run(plan, "review_change", {"diff": "+ limiter = RateLimiter(5, per='minute')"})
        if result.status != "succeeded":
            raise RuntimeError(f"the example run did not succeed: {result.error}")
        trace = engine.store.get_trace(result.run_id)
        assert trace is not None
        return trace


def main(argv: list[str]) -> int:
    """Write the example timeline to argv[0] (default: docs/timeline-example.svg)."""
    out = Path(argv[0]) if argv else OUT
    trace = anyio.run(run_example)
    out.write_text(render_timeline_svg(trace), encoding="utf-8")
    print(f"wrote {out} (run {trace.run.run_id}, {len(trace.steps)} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
