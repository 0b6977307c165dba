"""`stratum optimize` against the test LLM: the learned artifact beats the baseline, validates, runs, and is refused
when the contract changes. The test LLM answers correctly only when the prompt carries what was learned."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dspy", reason="the optimize extra: pip install 'stratum[optimize]'")

from stratum_core.engine import Engine, EngineConfig
from stratum_core.optimize._optimizer import OptimizeOptions, optimize_function
from stratum_core.plan import load_plan
from stratum_core.plan._learned import learned_yaml, load_learned
from stratum_core.store import MemoryRunStore
from stratum_core.testing import FakeLLM

REPO = Path(__file__).parents[3]
RULES = "ROUTING RULES: invoices and charges go to billing; parcels and deliveries to shipping; crashes to technical."
KEYWORDS = {
    "invoice": "billing",
    "charge": "billing",
    "parcel": "shipping",
    "delivery": "shipping",
    "crash": "technical",
}
TEXTS = [
    "I got an invoice for a plan I cancelled.",
    "You charged my card twice.",
    "The invoice total is wrong.",
    "Why is there a charge from last month?",
    "My parcel never arrived.",
    "The delivery came a week late.",
    "The parcel was opened when it got here.",
    "Can I change the delivery address?",
    "The app shows a crash report on start.",
    "Every export ends in a crash.",
    "A crash happens when I upload photos.",
    "Please send the invoice again.",
    "The delivery driver left it outside.",
    "The crash started after the update.",
]
PLAN = """
version: "1"
contracts:
  Route:
    team: {type: string, enum: [billing, shipping, technical]}
functions:
  route:
    mode: infer
    intent: Route a support ticket to the team that handles it.
    input: {text: {type: string}}
    output: Route
    retries: 0
flows:
  triage:
    input: {text: {type: string}}
    output: Route
    steps: [{id: route, function: route, inputs: {text: $.input.text}}]
"""


def truth(text: str) -> str:
    return next(team for word, team in KEYWORDS.items() if word in text.lower())


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """Right only when the prompt holds demonstrations or the learned rules; else always 'technical'."""
    messages = body["messages"]
    learned = any(m["role"] == "assistant" for m in messages) or RULES in messages[0]["content"]
    ticket = messages[-1]["content"]
    return {"team": truth(ticket) if learned else "technical"}


def is_proposal(body: dict[str, Any]) -> bool:
    return "new_instruction" in json.dumps(body.get("response_format") or {}) or "new_instruction" in json.dumps(
        body["messages"]
    )


@pytest.fixture
def workspace(tmp_path: Path, fake_llm: FakeLLM) -> Path:
    (tmp_path / "route.stratum.yaml").write_text(PLAN, encoding="utf-8")
    lines = [json.dumps({"input": {"text": text}, "label": {"team": truth(text)}}) for text in TEXTS]
    (tmp_path / "tickets.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    fake_llm.add_rule(is_proposal, {"new_instruction": RULES})
    fake_llm.add_rule(lambda body: True, answer)
    return tmp_path


def options(fake: FakeLLM, optimizer: Any) -> OptimizeOptions:
    return OptimizeOptions(
        optimizer=optimizer,
        model=fake.model,
        api_base=fake.url,
        api_key="sk-test",
        train_split=0.5,
        max_metric_calls=30,
    )


def test_bootstrap_learns_demonstrations_that_beat_the_baseline_on_the_held_out_split(
    workspace: Path, fake_llm: FakeLLM
) -> None:
    plan = load_plan(workspace / "route.stratum.yaml")

    report = optimize_function(plan, "route", workspace / "tickets.jsonl", options=options(fake_llm, "bootstrap"))

    assert report.optimized == 1.0
    assert report.baseline < 0.5  # 'technical' is right for about a third of the tickets
    assert (report.train, report.test) == (7, 7)
    assert report.learned.demos and report.learned.instructions == ""
    assert report.spent.calls == len(fake_llm.requests)
    provenance = report.learned.provenance
    assert provenance["optimizer"] == "bootstrap"
    assert provenance["scores"] == {"baseline": round(report.baseline, 4), "optimized": 1.0, "split": "test"}


def test_gepa_learns_an_instruction_from_stratums_feedback(workspace: Path, fake_llm: FakeLLM) -> None:
    plan = load_plan(workspace / "route.stratum.yaml")

    report = optimize_function(plan, "route", workspace / "tickets.jsonl", options=options(fake_llm, "gepa"))

    assert RULES in report.learned.instructions
    assert report.optimized == 1.0 > report.baseline
    proposals = [body for body in fake_llm.requests if is_proposal(body)]
    assert proposals, "the reflection model was asked for a new instruction"
    prompt = "\n".join(message["content"] for message in proposals[0]["messages"])
    assert 'label: result.team is \\"technical\\", expected' in prompt  # Stratum's own words, as GEPA quotes them


async def test_the_artifact_validates_runs_with_its_demonstrations_and_is_traced(
    workspace: Path, fake_llm: FakeLLM
) -> None:
    plan = load_plan(workspace / "route.stratum.yaml")
    report = optimize_function(plan, "route", workspace / "tickets.jsonl", options=options(fake_llm, "bootstrap"))
    (workspace / "route.learned.yaml").write_text(learned_yaml(report.learned), encoding="utf-8")
    text = PLAN.replace("    retries: 0\n", "    retries: 0\n    learned: route.learned.yaml\n")
    (workspace / "route.stratum.yaml").write_text(text, encoding="utf-8")
    fake_llm.requests.clear()

    learned_plan = load_plan(workspace / "route.stratum.yaml")
    store = MemoryRunStore()
    engine = Engine(store=store, config=EngineConfig(model=fake_llm.model, api_base=fake_llm.url, api_key="sk-test"))
    result = await engine.run(learned_plan, "triage", {"text": "My parcel is lost."})

    assert result.status == "succeeded" and result.output == {"team": "shipping"}
    (request,) = fake_llm.requests
    assert [m["role"] for m in request["messages"]][:3] == ["system", "user", "assistant"]  # demos, then the input
    trace = store.get_trace(result.run_id)
    assert trace is not None
    assert trace.steps[0].attributes["learned_hash"] == load_learned(workspace / "route.learned.yaml").hash


def test_a_changed_contract_makes_validate_refuse_the_artifact(workspace: Path, fake_llm: FakeLLM) -> None:
    plan = load_plan(workspace / "route.stratum.yaml")
    report = optimize_function(plan, "route", workspace / "tickets.jsonl", options=options(fake_llm, "bootstrap"))
    (workspace / "route.learned.yaml").write_text(learned_yaml(report.learned), encoding="utf-8")
    changed = PLAN.replace("[billing, shipping, technical]", "[billing, shipping, technical, other]").replace(
        "    retries: 0\n", "    retries: 0\n    learned: route.learned.yaml\n"
    )
    (workspace / "route.stratum.yaml").write_text(changed, encoding="utf-8")

    validate = subprocess.run(
        [sys.executable, "-m", "server.cli", "validate", str(workspace / "route.stratum.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )

    assert validate.returncode == 1
    assert "functions.route.learned: route.learned.yaml: it was learned for another contract" in validate.stdout
    assert "run `stratum optimize` again on the changed function" in validate.stdout


def test_the_command_writes_the_artifact_and_reports_both_scores(workspace: Path, fake_llm: FakeLLM) -> None:
    out = workspace / "learned" / "route.learned.yaml"

    done = subprocess.run(
        [
            sys.executable, "-m", "server.cli", "optimize", str(workspace / "route.stratum.yaml"), "route",
            "--data", str(workspace / "tickets.jsonl"), "--out", str(out), "--model", fake_llm.model,
            "--api-base", fake_llm.url, "--train-split", "0.5",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": "sk-test"},
        check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "held-out accuracy: baseline 0.286 -> optimized 1.000 (7 test / 7 train examples)" in done.stdout
    assert "learned: learned/route.learned.yaml" in done.stdout
    assert load_learned(out).function == "route"


def test_the_command_honours_the_models_file_for_the_output_strategy_and_the_price(
    workspace: Path, fake_llm: FakeLLM
) -> None:
    models = workspace / "models.yaml"
    models.write_text(
        f"models:\n  {fake_llm.model}:\n    output: [json_object, text]\n    price: [1000, 2000]\n", encoding="utf-8"
    )

    done = subprocess.run(
        [
            sys.executable, "-m", "server.cli", "optimize", str(workspace / "route.stratum.yaml"), "route",
            "--data", str(workspace / "tickets.jsonl"), "--out", str(workspace / "route.learned.yaml"),
            "--model", fake_llm.model, "--api-base", fake_llm.url, "--train-split", "0.5",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": "sk-test", "STRATUM_MODELS": str(models)},
        check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    # the file says this server takes JSON mode, not a schema: every call asked for that
    assert {json.dumps(body.get("response_format")) for body in fake_llm.requests} == {'{"type": "json_object"}'}
    # the file's price: the spend is priced although LiteLLM knows no price for the test model
    spent = re.search(r"spent: (\d+) model calls, (\d+)/(\d+) tokens in/out, cost \$([\d.]+)", done.stdout)
    assert spent is not None, done.stdout
    tokens_in, tokens_out = int(spent[2]), int(spent[3])
    assert spent[4] == f"{(tokens_in * 1000 + tokens_out * 2000) / 1_000_000:.4f}"
