"""The README's plan is real: it loads, and what the README says about running it is what happens."""

from __future__ import annotations

import json
import re
from pathlib import Path

from stratum_core.engine import Engine, EngineConfig
from stratum_core.errors import PostconditionFailed
from stratum_core.llm import LiteLLMClient, register_model
from stratum_core.plan import load_plan_text
from stratum_core.testing import FakeLLM

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_plan() -> str:
    (block,) = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    return block


def test_the_readme_plan_is_fifteen_lines_or_so_and_valid() -> None:
    text = readme_plan()
    assert len(text.strip().splitlines()) <= 16
    assert set(load_plan_text(text).flows) == {"triage"}


async def test_running_the_readme_plan_feeds_back_the_violation_it_promises(fake_llm: FakeLLM) -> None:
    register_model(fake_llm.model)
    engine = Engine(llm=LiteLLMClient(), config=EngineConfig(model=fake_llm.model, api_base=fake_llm.url))
    fake_llm.add_rule("emotional tone", {"label": "negative", "confidence": 0.42})
    result = await engine.run(load_plan_text(readme_plan()), "triage", {"text": "It broke again."})
    promised = "ensure: result.confidence > 0.7 (actual: result.confidence = 0.42)"
    assert promised in json.dumps(fake_llm.requests[1]["messages"])
    assert isinstance(result.error, PostconditionFailed)
    assert promised in result.error.violations
