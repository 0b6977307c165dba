"""The optimizer's metric speaks Stratum's violations; data files are checked line by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stratum_core.errors import ConfigurationError
from stratum_core.optimize._data import load_examples, split_examples
from stratum_core.optimize._metric import Judge
from stratum_core.plan import InferFunction, load_plan_text

PLAN = load_plan_text("""
version: "1"
contracts:
  Verdict: {team: {type: string, enum: [billing, shipping]}, score: {type: integer, minimum: 0, maximum: 10}}
functions:
  judge:
    mode: infer
    intent: Judge.
    input: {text: {type: string}}
    output: Verdict
    ensure: ["result.score > 2"]
flows:
  f:
    input: {text: {type: string}}
    steps: [{id: j, function: judge, inputs: {text: $.input.text}}]
""")
BILLING = {"team": "billing"}
FN = PLAN.functions["judge"]
assert isinstance(FN, InferFunction)


def test_a_matching_answer_scores_one() -> None:
    judge = Judge(FN, PLAN.contracts)

    judgement = judge('{"team": "billing", "score": 5}', {"text": "x"}, {"team": "billing"})

    assert judgement.score == 1.0


@pytest.mark.parametrize(
    ("answer", "label", "feedback"),
    [
        ('{"team": "shipping", "score": 5}', BILLING, '- label: result.team is "shipping", expected "billing"'),
        ('{"team": "billing", "score": 1}', BILLING, "- ensure: result.score > 2 (actual: result.score = 1)"),
        ('{"team": "billing", "score": 11}', BILLING, "- schema: result.score: 11 is greater than the maximum of 10"),
        ("not json", BILLING, "- parse: the answer is not valid JSON (Expecting value at line 1, column 1)"),
    ],
)
def test_a_failing_answer_scores_zero_with_the_violation_a_retry_would_get(
    answer: str, label: object, feedback: str
) -> None:
    judgement = Judge(FN, PLAN.contracts)(answer, {"text": "x"}, label)

    assert judgement.score == 0.0
    assert judgement.feedback == f"The answer was rejected:\n{feedback}"


def test_a_metric_expression_replaces_the_label_and_is_sandboxed() -> None:
    judge = Judge(FN, PLAN.contracts, metric="result.score / 10 if result.team == label.team else 0")

    assert judge('{"team": "billing", "score": 7}', {"text": "x"}, {"team": "billing"}).score == 0.7
    assert judge('{"team": "shipping", "score": 7}', {"text": "x"}, {"team": "billing"}).score == 0.0
    with pytest.raises(ConfigurationError, match="--metric"):
        Judge(FN, PLAN.contracts, metric="__import__('os')")


def test_a_bad_data_file_names_every_line_and_what_is_wrong(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(
        "\n".join(
            [
                json.dumps({"input": {"text": "ok"}, "label": {"team": "billing"}}),
                "{not json",
                json.dumps({"input": {"text": 3}, "label": {}}),
                json.dumps({"text": "no input key"}),
            ]
        ),
        encoding="utf-8",
    )

    with pytest.raises(ConfigurationError) as raised:
        load_examples(data, FN, PLAN.contracts)

    lines = str(raised.value).splitlines()
    assert lines[0] == "the data file has problems:"
    assert lines[1].startswith(f"{data}:2: not JSON")
    assert lines[2] == f"{data}:3: input.text: expected string, got 3"
    assert lines[3] == f'{data}:4: expected an object with "input" and "label" (or "output")'


def test_the_split_is_seeded_and_keeps_an_example_on_each_side(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(
        "\n".join(json.dumps({"input": {"text": str(i)}, "label": {"team": "billing"}}) for i in range(10)),
        encoding="utf-8",
    )
    examples = load_examples(data, FN, PLAN.contracts)

    train, test = split_examples(examples.items, train_split=0.7, seed=3)
    again, _ = split_examples(examples.items, train_split=0.7, seed=3)

    assert (len(train), len(test)) == (7, 3)
    assert train == again
    assert split_examples(examples.items[:2], train_split=0.99, seed=0)[1]  # never an empty test split
    assert len(examples.data_hash) == 64
