"""JSON Schema patterns run by RE2: a catastrophic pattern on a long input answers at once; an untrusted plan may use
only patterns RE2 can run, and only the models it is allowed."""

from __future__ import annotations

import pytest

from stratum_core.engine._validation import schema_violations
from stratum_core.errors import PlanError
from stratum_core.plan import load_plan_text
from stratum_core.plan._patterns import SchemaValidator, pattern_problem, pattern_search

REDOS = "^(a+)+$"  # exponential under a backtracking engine on "aaaa...!"
LONG = "a" * 200_000 + "!"


def test_a_catastrophic_pattern_on_a_long_input_is_decided_by_re2() -> None:
    assert not pattern_search(REDOS, LONG)
    assert pattern_search(REDOS, "a" * 200_000)
    [line] = schema_violations(LONG, {"type": "string", "pattern": REDOS}, root="input.text")
    assert line.startswith("schema: input.text: 'aaaa") and "does not match '^(a+)+$'" in line
    assert len(line) < 200  # the value is shortened in the message


def test_pattern_properties_and_additional_properties_match_keys_with_re2() -> None:
    schema = {
        "type": "object",
        "patternProperties": {"^(x+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    errors = sorted(error.message for error in SchemaValidator(schema).iter_errors({"xxx": "s", "x" * 50_000 + "!": 1}))
    assert errors[0] == "'s' is not of type 'integer'"
    assert errors[1].endswith("does not match any of the regexes: '^(x+)+$'")


def test_a_trusted_plans_back_reference_still_works_through_re() -> None:
    assert pattern_problem(r"(a)\1") is not None
    assert pattern_search(r"(a)\1", "xaa") and not pattern_search(r"(a)\1", "xa")


PLAN = """\
version: "1"
contracts:
  Word:
    text: {type: string, pattern: "PATTERN"}
functions:
  name_it:
    mode: infer
    intent: Name it.
    input: {word: {type: Word}}
    output: {type: string}
    MODEL
flows:
  main:
    input: {word: {type: Word}}
    output: {type: string}
    steps:
      - {id: name_it, function: name_it, inputs: {word: $.input.word}}
"""


def plan(pattern: str = "^[a-z]+$", model: str = "") -> str:
    return PLAN.replace("PATTERN", pattern).replace("MODEL", f"model: {model}" if model else "")


def test_an_untrusted_plan_may_not_use_a_pattern_re2_cannot_run() -> None:
    with pytest.raises(PlanError) as raised:
        load_plan_text(plan(r"(a)\\1"), source="agent", untrusted=True)
    [problem] = raised.value.problems
    assert (problem.line, problem.path) == (4, "contracts.Word.text.pattern")
    assert "patterns RE2 can run" in problem.message and problem.hint == "no back-references or lookarounds"
    assert load_plan_text(plan(r"(a)\\1"), source="trusted").contracts  # a trusted plan keeps it


def test_an_untrusted_plan_may_name_only_the_allowed_models_checked_when_it_is_loaded() -> None:
    with pytest.raises(PlanError) as raised:
        load_plan_text(plan(model="o1-pro"), source="agent", untrusted=True, allowed_models={"openai/small"})
    [problem] = raised.value.problems
    assert (problem.line, problem.path) == (11, "functions.name_it.model")
    assert problem.message == (
        "the model 'o1-pro' is not one of the server's configured models (openai/small), the only ones a plan sent "
        "by a client may use"
    )
    assert load_plan_text(plan(model="openai/small"), source="agent", untrusted=True, allowed_models={"openai/small"})
    assert load_plan_text(plan(), source="agent", untrusted=True, allowed_models=set())  # the default: no name
    assert load_plan_text(plan(model="o1-pro"), source="trusted", allowed_models={"openai/small"})  # trusted: any
