"""Programs written for the reference library's `import stratum`, in its documented style, run here unchanged.

Each program in tests/fixtures/reference_programs configures its own model (`default_model=...`); the test points
LiteLLM at the test LLM through the environment, as a user would point it at a gateway.
"""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stratum
from stratum_core.testing import FakeLLM

PROGRAMS = Path(__file__).parents[2] / "fixtures" / "reference_programs"


@pytest.fixture
def gateway(fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    monkeypatch.setenv("STRATUM_API_BASE", fake_llm.url)
    monkeypatch.setenv("STRATUM_API_KEY", "test")
    monkeypatch.delenv("STRATUM_MODEL", raising=False)
    monkeypatch.delenv("STRATUM_STORE", raising=False)
    yield fake_llm
    stratum.configure()


def run_program(name: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    runpy.run_path(str(PROGRAMS / name), run_name="__main__")
    return capsys.readouterr().out.splitlines()


def test_the_core_infer_flow_program_runs_with_retry_on_its_ensure(
    gateway: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway.enqueue(
        {"label": "negative", "confidence": 0.4, "reasoning": "unsure"},
        {"label": "negative", "confidence": 0.9, "reasoning": "late delivery"},
    )
    assert run_program("core_infer_flow.py", capsys) == ["negative 0.9 9"]
    retry = gateway.requests[1]["messages"]
    assert any("confidence" in str(message["content"]) for message in retry)  # the violation was fed back


def test_the_parallel_and_race_program_runs(gateway: FakeLLM, capsys: pytest.CaptureFixture[str]) -> None:
    gateway.add_rule("one concern", lambda body: {"focus": "security" if "security" in str(body) else "style",
                                                   "summary": "fine"})  # fmt: skip
    gateway.add_rule("Summarise", {"value": "returns one"})
    assert run_program("parallel_race.py", capsys) == ["['security', 'style'] returns one"]


def test_the_refine_and_sampling_program_runs(gateway: FakeLLM, capsys: pytest.CaptureFixture[str]) -> None:
    gateway.add_rule("headline", {"value": "Tea: a long and storied history of a leaf"}, times=1)
    gateway.add_rule("headline", {"value": "Tea through the ages"})
    gateway.add_rule("colour", {"value": "blue"})
    gateway.add_rule("Say yes or no", {"value": True})
    assert run_program("refine_stable.py", capsys) == ["Tea through the ages", "blue True", "True"]
    tea_calls = [r for r in gateway.requests if "Say yes or no" in str(r["messages"])]
    assert len(tea_calls) == 3  # test_mode: sample_n samples of a stable function, which must agree


def test_the_human_review_program_resolves_through_an_emit_sink(
    gateway: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_program("human_review.py", capsys)
    assert out[0].startswith("refused: the decision does not fit str")
    assert out[1] == "approve alice looks good {'diff': '+x = 1'} ['approve', 'reject']"


def test_the_tracing_program_reads_records_and_spans(gateway: FakeLLM, capsys: pytest.CaptureFixture[str]) -> None:
    gateway.add_rule("Label the text", {"label": "greeting"})
    assert run_program("tracing.py", capsys) == [
        "greeting",
        "1 label 1 {'label': 'greeting'}",
        "label openai/gpt-4o-mini 1",
        "0",
    ]


def test_the_reference_error_names_and_defaults_are_there() -> None:
    from stratum.exceptions import StratumCompileError, StratumWarning

    assert StratumCompileError is stratum.PlanError
    assert issubclass(StratumWarning, UserWarning)

    @stratum.infer(intent="Say hi.")
    def hi(name: str) -> str: ...

    assert hi.definition.retries == 3  # the reference's default


def test_the_debate_and_errors_program_runs(gateway: FakeLLM, capsys: pytest.CaptureFixture[str]) -> None:
    votes = iter(range(100))

    def answer(body: dict[str, Any]) -> Any:
        text = str(body["messages"])
        if "Argue whether" in text:
            return {"stance": "spaces", "argument": "round 2" if '"stance": "spaces"' in text else "round 1"}
        if "Synthesize" in text:
            return {"value": "spaces, agreed" if "converged: true" in text else "?"}
        if "Score the text" in text:
            return {"value": 1}
        if "Vote on the text" in text:
            return {"value": next(votes)}
        if "Check the text" in text:
            return {"value": 9}
        raise AssertionError(text)

    gateway.add_rule(lambda body: True, answer)
    assert run_program("debate_and_errors.py", capsys) == [
        "spaces, agreed",
        "True PostconditionFailed True 9",
        "score 2 ensure: result.value > 5 (actual: result.value = 1)",
        "vote 3 3",
        "check",
    ]
    debaters = [r for r in gateway.requests if "Argue whether" in str(r["messages"])]
    assert len(debaters) == 4  # the same function argues twice, for two rounds
    second_round = [r for r in debaters if "round 1" in str(r["messages"])]  # the other's argument of round 1
    assert len(second_round) == 2
    judge = next(r for r in gateway.requests if "Synthesize" in str(r["messages"]))
    assert str(judge["messages"]).count("round 2") == 2  # its arguments are every round's, in agent order
