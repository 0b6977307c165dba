"""The engine keeps the checker's rules: what validates does not fail at run time for a reason the checker could see.

The four contradictions the engine had with its own rules (skipped groups, `require: 0` outcomes, `require: any`
with `validate`, a debate topic bound to an absent input), the step boundary (inputs checked against the callee's
input schema, defaults filled in), and the run-time side of the narrowing forms (an absent optional value reads as
None where the checker lets it be tested).
"""

from __future__ import annotations

import pytest
from engine_helpers import plan
from inline_snapshot import snapshot

from stratum_core.engine import Engine
from stratum_core.errors import InvalidInput
from stratum_core.testing import FakeLLM

SKIPPED_GROUPS = """
version: "1"
functions:
  echo:
    mode: compute
    input: {text: {type: string}}
    output: {type: string}
    expr: "text"
flows:
  main:
    input: {text: {type: string}}
    output: {type: string}
    steps:
      - {id: maybe, function: echo, inputs: {text: $.input.text}, when: "len(input.text) > 100"}
      - id: group
        parallel:
          require: 2
          steps:
            - {id: a, function: echo, inputs: {text: $.steps.maybe.output}}
            - {id: b, function: echo, inputs: {text: $.steps.maybe.output}}
      - id: fastest
        race:
          - {id: c, function: echo, inputs: {text: $.steps.maybe.output}}
      - {id: each, for_each: $.steps.group.output, step: {function: echo, inputs: {text: $.item}}}
      - {id: fallback, function: echo, inputs: {text: $.input.text}}
    result: [$.steps.fastest.output, $.steps.fallback.output]
"""


async def test_a_group_that_reads_a_skipped_step_is_skipped_like_any_step(engine: Engine) -> None:
    result = await engine.run(plan(SKIPPED_GROUPS), "main", {"text": "short"})
    assert result.status == "succeeded", result.error
    assert result.output == "short"
    statuses = {s.step_id: s.status for s in engine.store.get_steps(result.run_id)}
    assert statuses == {
        "maybe": "skipped",
        "group": "skipped",
        "fastest": "skipped",
        "each": "skipped",
        "fallback": "succeeded",
    }


REQUIRE_ZERO = """
version: "1"
contracts:
  Outcome:
    ok: {type: boolean}
    output: {type: string, required: false}
    error: {type: string, required: false}
functions:
  echo:
    mode: compute
    input: {text: {type: string}}
    output: {type: string}
    expr: "text"
flows:
  main:
    input: {text: {type: string}}
    output: {type: array, items: {type: Outcome}}
    steps:
      - id: all
        parallel:
          require: 0
          validate: "all(o.error != '' for o in outputs if 'error' in o)"
          steps:
            - {id: ran, function: echo, inputs: {text: $.input.text}}
            - {id: not_run, function: echo, inputs: {text: $.input.text}, when: "input.text == 'never'"}
"""


async def test_require_zero_gives_a_skipped_branch_an_error_text_the_declared_output_accepts(engine: Engine) -> None:
    result = await engine.run(plan(REQUIRE_ZERO), "main", {"text": "hello"})
    assert result.status == "succeeded", result.error
    assert result.output == snapshot(
        [{"ok": True, "output": "hello"}, {"ok": False, "error": "branch 'all.not_run' was skipped"}]
    )


REQUIRE_ANY = """
version: "1"
functions:
  words:
    mode: compute
    input: {text: {type: string}}
    output: {type: array, items: {type: string}}
    expr: "text.split()"
flows:
  main:
    input: {text: {type: string}}
    output: {type: array, items: {type: string}}
    steps:
      - id: first
        parallel:
          require: any
          validate: "len(outputs) == 1 and len(outputs[0]) == 3"
          steps:
            - {id: one, function: words, inputs: {text: $.input.text}}
"""


async def test_require_any_validate_sees_a_list_of_the_one_winner_even_when_it_is_a_list(engine: Engine) -> None:
    result = await engine.run(plan(REQUIRE_ANY), "main", {"text": "a b c"})
    assert result.status == "succeeded", result.error
    assert result.output == ["a", "b", "c"]


DEBATE = """
version: "1"
contracts:
  Argument:
    position: {type: string, enum: [merge, hold]}
functions:
  optimist:
    mode: infer
    intent: Argue for merging.
    input: {topic: {type: string, required: false}}
    output: Argument
  critic:
    mode: infer
    intent: Argue for holding.
    input: {topic: {type: string, required: false}}
    output: Argument
flows:
  decide:
    input: {diff: {type: string, required: false}}
    steps:
      - id: debate
        debate: {agents: [optimist, critic], topic: $.input.diff, rounds: 1}
"""


async def test_a_debate_topic_bound_to_an_absent_optional_input_is_left_out(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.add_rule("Argue", {"position": "hold"})
    result = await engine.run(plan(DEBATE), "decide", {})
    assert result.status == "succeeded", result.error
    assert result.output["arguments"] == {"optimist": {"position": "hold"}, "critic": {"position": "hold"}}


UNTYPED = """
version: "1"
functions:
  guess:
    mode: infer
    intent: Guess a value.
    input: {text: {type: string}}
    output: {type: any}
  shout:
    mode: compute
    input: {s: {type: string}, times: {type: integer, minimum: 1, default: 2}}
    output: {type: string}
    expr: "s.upper() * times"
flows:
  main:
    input: {text: {type: string}}
    steps:
      - {id: g, function: guess, inputs: {text: $.input.text}}
      - {id: loud, function: shout, inputs: {s: $.steps.g.output}}
"""


async def test_a_value_of_unknown_type_is_checked_at_the_step_boundary_naming_step_binding_and_input(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue("42")
    result = await engine.run(plan(UNTYPED), "main", {"text": "x"})
    assert result.status == "failed"
    assert isinstance(result.error, InvalidInput)
    assert str(result.error) == snapshot(
        "step 'loud': input 's' (bound to $.steps.g.output) of function 'shout' is invalid: expected string, got 42"
    )
    assert (result.error.field, result.error.binding) == ("s", "$.steps.g.output")


async def test_a_default_fills_an_input_the_step_leaves_out(engine: Engine, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue('"ab"')
    result = await engine.run(plan(UNTYPED), "main", {"text": "x"})
    assert result.status == "succeeded", result.error
    assert result.output == "ABAB"


OPTIONAL = """
version: "1"
contracts:
  Meta:
    name: {type: string}
    tag: {type: string, required: false}
functions:
  describe:
    mode: infer
    intent: Describe the document.
    input: {text: {type: string}}
    output: Meta
    ensure: ["result.tag is None or len(result.tag) > 0", "'tag' not in result or result.tag != 'bad'"]
  label:
    mode: compute
    input: {tag: {type: string, required: false}, name: {type: string}}
    output: {type: string}
    expr: "tag.upper() if tag is not None else name"
flows:
  main:
    input: {text: {type: string}}
    output: {type: string}
    steps:
      - {id: m, function: describe, inputs: {text: $.input.text}}
      - {id: l, function: label, inputs: {tag: $.steps.m.output.tag, name: $.steps.m.output.name}}
"""


@pytest.mark.parametrize(
    ("answer", "expected"), [({"name": "doc"}, "doc"), ({"name": "doc", "tag": "urgent"}, "URGENT")]
)
async def test_an_absent_optional_field_reads_as_none_where_the_checker_lets_it_be_tested(
    engine: Engine, fake_llm: FakeLLM, answer: dict[str, str], expected: str
) -> None:
    fake_llm.enqueue(answer)
    result = await engine.run(plan(OPTIONAL), "main", {"text": "x"})
    assert result.status == "succeeded", result.error
    assert result.output == expected


SUBFLOW = """
version: "1"
functions:
  guess:
    mode: infer
    intent: Guess a level.
    input: {}
    output: {type: any}
  echo:
    mode: compute
    input: {text: {type: string}}
    output: {type: string}
    expr: "text"
flows:
  leveled:
    input: {level: {type: string, enum: [low, high]}, text: {type: string}}
    steps:
      - {id: e, function: echo, inputs: {text: $.input.text}}
  main:
    input: {}
    steps:
      - {id: g, function: guess, inputs: {}}
      - {id: sub, flow: leveled, inputs: {level: $.steps.g.output, text: done}}
"""


async def test_a_sub_flow_call_is_checked_against_the_sub_flow_input_at_the_boundary(
    engine: Engine, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue('"medium"')
    result = await engine.run(plan(SUBFLOW), "main", {})
    assert result.status == "failed"
    assert isinstance(result.error, InvalidInput)
    assert str(result.error) == snapshot(
        "step 'sub': input 'level' (bound to $.steps.g.output) of flow 'leveled' is invalid: "
        '"medium" is not one of ["low", "high"]'
    )
