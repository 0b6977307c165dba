"""Learned-context files: read safely, tied to the function's contract, refused with the reason, rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratum_core.engine._prompt import compile_messages, learned_prompt
from stratum_core.errors import PlanError
from stratum_core.plan import InferFunction, load_plan, load_plan_text
from stratum_core.plan._learned import (
    LearnedContext,
    LearnedDemo,
    LearnedError,
    function_contract_hash,
    learned_yaml,
    load_learned,
)

PLAN = """
version: "1"
contracts:
  Route: {team: {type: string, enum: [billing, shipping]}}
functions:
  route:
    mode: infer
    intent: Route the ticket.
    context: [Be brief.]
    input: {text: {type: string}, note: {type: string, opaque: true}}
    output: Route
    learned: route.learned.yaml
flows:
  f:
    input: {text: {type: string}, note: {type: string}}
    steps: [{id: r, function: route, inputs: {text: $.input.text, note: $.input.note}}]
"""


def write_artifact(folder: Path, **changes: object) -> LearnedContext:
    plan = load_plan_text(PLAN.replace("    learned: route.learned.yaml\n", ""))
    fn = plan.functions["route"]
    learned = LearnedContext(
        function="route",
        contract_hash=function_contract_hash(fn.input, fn.output, plan.contracts),
        instructions="Parcels go to shipping.\nInvoices go to billing.",
        demos=(LearnedDemo(input={"text": "Where is my parcel?", "note": "SECRET-NOTE"}, output={"team": "shipping"}),),
        provenance={"optimizer": "bootstrap"},
    ).model_copy(update=changes)
    (folder / "route.learned.yaml").write_text(learned_yaml(learned), encoding="utf-8")
    return learned


def load(folder: Path) -> InferFunction:
    (folder / "plan.stratum.yaml").write_text(PLAN, encoding="utf-8")
    fn = load_plan(folder / "plan.stratum.yaml").functions["route"]
    assert isinstance(fn, InferFunction)
    return fn


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(PlanError) as raised:
        load(folder)
    return [str(problem).split(": ", 1)[1] for problem in raised.value.problems]


def test_a_matching_artifact_is_attached_to_its_function_and_round_trips(tmp_path: Path) -> None:
    written = write_artifact(tmp_path)

    fn = load(tmp_path)

    assert fn.learned_context == written
    assert load_learned(tmp_path / "route.learned.yaml").hash == written.hash
    assert "instructions: |" in (tmp_path / "route.learned.yaml").read_text(encoding="utf-8")  # readable in review


def test_a_changed_contract_refuses_the_artifact_and_says_what_to_do(tmp_path: Path) -> None:
    write_artifact(tmp_path, contract_hash="000000000000")

    (problem,) = problems_of(tmp_path)

    assert problem.startswith(
        "functions.route.learned: route.learned.yaml: it was learned for another contract (hash 000000000000;"
    )
    assert problem.endswith("(run `stratum optimize` again on the changed function)")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "functions.route.learned: route.learned.yaml: no such file (run `stratum optimize` to write it)"),
        ("a: [", "functions.route.learned: route.learned.yaml: not valid YAML: while parsing a flow node"),
        (
            "team: billing\n",
            "functions.route.learned: route.learned.yaml: not a learned-context file (no 'stratum_learned' key; "
            "write it with `stratum optimize`) (run `stratum optimize` to write it)",
        ),
        (
            "stratum_learned: 1\nfunction: route\n",
            "functions.route.learned: route.learned.yaml: contract_hash: Field required (run `stratum optimize` to "
            "write it)",
        ),
    ],
)
def test_an_unusable_file_is_refused_with_the_reason(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "route.learned.yaml").write_text(content, encoding="utf-8")

    (problem,) = problems_of(tmp_path)

    assert problem.startswith(message.split(" (run")[0])


def test_an_artifact_for_another_function_is_refused(tmp_path: Path) -> None:
    write_artifact(tmp_path, function="classify")

    assert problems_of(tmp_path) == [
        "functions.route.learned: route.learned.yaml: it was learned for function 'classify', not 'route'"
    ]


def test_a_plan_sent_by_a_client_cannot_read_a_learned_file(tmp_path: Path) -> None:
    write_artifact(tmp_path)

    with pytest.raises(PlanError) as raised:
        load_plan_text(PLAN, base_dir=tmp_path, untrusted=True)

    assert any("learned context is not allowed in plans sent by a client" in str(p) for p in raised.value.problems)


def test_an_oversized_file_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("x" * 1_000_001, encoding="utf-8")

    with pytest.raises(LearnedError, match="more than 1,000,000"):
        load_learned(tmp_path / "big.yaml")


def test_the_prompt_shows_the_learned_instructions_and_the_demos_but_never_an_opaque_value(tmp_path: Path) -> None:
    write_artifact(tmp_path)
    fn = load(tmp_path)
    plan_contracts = load_plan(tmp_path / "plan.stratum.yaml").contracts

    instructions, examples = learned_prompt(fn, plan_contracts)
    messages = compile_messages(
        intent=fn.intent,
        context=fn.context,
        visible={"text": "Invoice please"},
        attachment={},
        instructions=instructions,
        examples=examples,
    )

    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "Context:\nParcels go to shipping.\nInvoices go to billing." in messages[0]["content"]
    assert "Be brief." not in messages[0]["content"]  # the learned instructions take the context's place
    assert messages[1]["content"] == 'Inputs:\ntext: "Where is my parcel?"'
    assert messages[2]["content"] == '{"team": "shipping"}'
    assert "SECRET-NOTE" not in str(messages)
