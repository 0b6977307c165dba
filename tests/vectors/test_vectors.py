"""The shared vectors still hold for Python: the TypeScript package (ts/) is tested against the same files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from vector_cases import contract_answers, expression_answers, feedback_answers

HERE = Path(__file__).parent


def stored(name: str) -> Any:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def test_python_gives_the_stored_answer_for_every_expression_of_the_shared_corpus() -> None:
    expected = stored("expressions.json")
    actual = expression_answers()
    assert [entry["expression"] for entry in actual] == [entry["expression"] for entry in expected]
    wrong = [(e["expression"], e, a) for e, a in zip(expected, actual, strict=True) if e != a]
    assert not wrong, f"{len(wrong)} answers changed (run tests/vectors/make_vectors.py on purpose): {wrong[:3]}"


def test_python_gives_the_stored_schema_and_hash_for_every_shared_contract() -> None:
    assert contract_answers() == stored("contracts.json")


def test_python_gives_the_stored_violations_and_retry_prompts_for_every_scripted_answer() -> None:
    assert feedback_answers() == stored("feedback.json")


@pytest.mark.parametrize("name", ["expressions.json", "contracts.json", "feedback.json"])
def test_vector_files_are_written_by_the_generator(name: str) -> None:
    text = (HERE / name).read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert json.loads(text)
