from __future__ import annotations

import sys

import pytest

from stratum_core.errors import PlanError
from stratum_core.plan import load_plan_text
from stratum_core.plan._types import ANY, Ty, can_feed, record

HEAD = """\
version: "1"
contracts:
  Sentiment:
    label: {type: string, enum: [positive, negative]}
    confidence: {type: number}
functions:
  classify:
    mode: infer
    intent: Classify.
    input: {text: {type: string}}
    output: Sentiment
  sample:
    mode: infer
    intent: Classify, several times.
    input: {text: {type: string}}
    output: Sentiment
    stable: false
    samples: 3
  count:
    mode: compute
    input: {n: {type: integer}}
    output: {type: integer}
    expr: "n + 1"
  half:
    mode: compute
    input: {x: {type: number}}
    output: {type: number}
    expr: "x / 2"
  label_of:
    mode: compute
    input: {s: {type: Sentiment}}
    output: {type: string}
    expr: "s.label"
  labels:
    mode: compute
    input: {all: {type: array, items: {type: Sentiment}}}
    output: {type: integer}
    expr: "len(all)"
  anything:
    mode: compute
    input: {value: {type: object}}
    output: {type: string}
    expr: "'ok'"
  argue:
    mode: infer
    intent: Argue.
    input: {topic: {type: string}}
    output: Sentiment
flows:
  main:
    input: {text: {type: string}, n: {type: integer}}
    steps:
"""


def _problems(steps: str, *, head: str = HEAD) -> list[str]:
    try:
        load_plan_text(head + steps, source="p.yaml")
    except PlanError as error:
        return [f"{p.path}: {p.message}" for p in error.problems]
    return []


def test_an_integer_feeds_a_number_input_and_a_contract_feeds_an_object_input() -> None:
    steps = """\
      - {id: c, function: count, inputs: {n: $.input.n}}
      - {id: h, function: half, inputs: {x: $.steps.c.output}}
      - {id: s, function: classify, inputs: {text: $.input.text}}
      - {id: o, function: anything, inputs: {value: $.steps.s.output}}
"""
    assert _problems(steps) == []


def test_a_parallel_group_outputs_a_list_unless_it_requires_any() -> None:
    steps = """\
      - id: all
        parallel:
          steps:
            - {id: a, function: classify, inputs: {text: $.input.text}}
            - {id: b, function: classify, inputs: {text: $.input.text}}
      - id: one
        parallel:
          require: any
          steps:
            - {id: c, function: classify, inputs: {text: $.input.text}}
      - {id: n_all, function: labels, inputs: {all: $.steps.all.output}}
      - {id: n_one, function: label_of, inputs: {s: $.steps.one.output}}
      - {id: wrong, function: label_of, inputs: {s: $.steps.all.output}}
"""
    assert _problems(steps) == [
        "flows.main.steps[4].inputs.s: $.steps.all.output: a list of Sentiment cannot feed input 's' (Sentiment)"
    ]


def test_require_zero_outputs_ok_and_error_records() -> None:
    steps = """\
      - id: collect
        parallel:
          require: 0
          validate: "any(o.ok for o in outputs) and all(o.output.label != '' for o in outputs if 'output' in o)"
          steps:
            - {id: a, function: classify, inputs: {text: $.input.text}}
      - {id: first, function: label_of, inputs: {s: "$.steps.collect.output[0].output"}}
      - {id: bad, function: label_of, inputs: {s: "$.steps.collect.output[0].value"}}
"""
    assert _problems(steps) == [
        "flows.main.steps[1].inputs.s: $.steps.collect.output[0].output: cannot feed input 's' (Sentiment): "
        "it may be absent, and Sentiment is required",
        "flows.main.steps[2].inputs.s: $.steps.collect.output[0].value: "
        "a record {ok, output, error} has no field 'value'",
    ]


def test_an_unstable_function_outputs_value_samples_and_agreement() -> None:
    steps = """\
      - {id: s, function: sample, inputs: {text: $.input.text}}
      - {id: label, function: label_of, inputs: {s: $.steps.s.output.value}}
      - {id: whole, function: label_of, inputs: {s: $.steps.s.output}}
"""
    assert _problems(steps) == [
        "flows.main.steps[2].inputs.s: $.steps.s.output: a record {value, samples, agreement} cannot feed input 's' "
        "(Sentiment): a record {value, samples, agreement} has field 'value', which Sentiment does not have (a record "
        "feeds a type only with the fields it declares)"
    ]


def test_a_debate_without_synthesize_outputs_its_rounds_and_arguments() -> None:
    steps = """\
      - id: talk
        debate: {agents: [argue, argue], topic: $.input.text}
      - {id: last, function: label_of, inputs: {s: $.steps.talk.output.arguments.argue}}
      - {id: rounds, function: count, inputs: {n: $.steps.talk.output.rounds}}
"""
    assert _problems(steps) == []


def test_a_for_each_outputs_a_list_and_types_its_item() -> None:
    steps = """\
      - id: each
        for_each: $.input.text
        step: {function: classify, inputs: {text: $.item}}
"""
    assert _problems(steps) == ["flows.main.steps[0].for_each: for_each needs a list, but $.input.text is a string"]


def test_the_flow_output_must_be_what_its_result_produces() -> None:
    head = HEAD.replace(
        "    input: {text: {type: string}, n: {type: integer}}\n    steps:\n",
        "    input: {text: {type: string}, n: {type: integer}}\n    output: Sentiment\n    steps:\n",
    )
    good = "      - {id: s, function: classify, inputs: {text: $.input.text}}\n"
    assert _problems(good, head=head) == []
    bad = good + "      - {id: c, function: count, inputs: {n: $.input.n}}\n"
    assert _problems(bad, head=head) == [
        "flows.main.output: the last step ('c') is an integer, but the flow's output is Sentiment"
    ]
    assert _problems(bad + "    result: $.steps.s.output\n", head=head) == []


def test_expression_columns_point_inside_quoted_text() -> None:
    steps = """\
      - id: s
        function: classify
        when: "input.text != '' and input.txt"
        inputs: {text: $.input.text}
"""
    with pytest.raises(PlanError) as raised:
        load_plan_text(HEAD + steps, source="p.yaml")
    (problem,) = raised.value.problems
    line = (HEAD + steps).splitlines()[problem.line - 1]
    assert line[problem.column - 1 :].startswith("input.txt")


def test_import_checks_can_be_skipped_and_never_leave_sys_path_changed() -> None:
    text = """\
version: "1"
functions:
  f:
    mode: compute
    input: {x: {type: string}}
    output: {type: string}
    call: surely_not_a_module_here:f
"""
    before = list(sys.path)
    with pytest.raises(PlanError):
        load_plan_text(text, base_dir="/tmp")
    assert sys.path == before
    assert load_plan_text(text, check_imports=False).functions["f"].mode == "compute"


def test_types_feed_by_kind_name_and_items() -> None:
    sentiment = Ty("contract", name="Sentiment")
    assert can_feed(Ty("integer"), Ty("number"))
    assert not can_feed(Ty("number"), Ty("integer"))
    assert can_feed(ANY, sentiment) and can_feed(sentiment, ANY)
    assert not can_feed(Ty("string"), sentiment)
    assert not can_feed(sentiment, Ty("contract", name="Reply"))
    assert can_feed(Ty("array", items=Ty("integer")), Ty("array", items=Ty("number")))
    assert not can_feed(Ty("array", items=Ty("string")), Ty("array", items=sentiment))
    assert can_feed(record(a=Ty("integer")), record(a=Ty("number")))
    assert not can_feed(record(a=Ty("integer"), b=Ty("string")), record(a=Ty("number")))  # the record-width rule
    assert not can_feed(record(b=Ty("string")), record(a=Ty("number")))
