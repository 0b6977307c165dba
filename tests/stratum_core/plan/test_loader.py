from __future__ import annotations

from pathlib import Path

import pytest

from stratum_core.errors import PlanError
from stratum_core.plan import (
    CallStep,
    ComputeFunction,
    DebateStep,
    ForEachStep,
    HumanFunction,
    InferFunction,
    ParallelStep,
    Plan,
    RaceStep,
    find_plan_files,
    load_plan,
    load_plan_text,
    load_plans,
)
from stratum_core.plan._loader import parse_duration
from stratum_core.plan._schema import content_hash

V1 = """\
version: "1"
description: A small plan.
contracts:
  Sentiment:
    label: {type: string, values: [positive, negative]}
    confidence: {type: number, minimum: 0, maximum: 1}
functions:
  classify:
    mode: infer
    intent: Classify.
    context: Be brief.
    input: {text: {type: string}}
    output: Sentiment
    ensure: "result.confidence > 0.5"
  flag:
    mode: compute
    input: {s: {type: Sentiment}}
    output: {type: boolean}
    expr: "s.label == 'negative'"
  argue:
    mode: infer
    intent: Argue about the text.
    input: {topic: {type: string}}
    output: {type: string}
  ask:
    mode: human
    question: OK?
    output: {type: boolean}
    timeout: 5m
    on_timeout: false
flows:
  main:
    input: {text: {type: string}, texts: {type: array, items: {type: string}}}
    output: Sentiment
    steps:
      - {id: one, function: classify, inputs: {text: $.input.text}}
      - id: flagged
        function: flag
        depends_on: one
        skip_if: "steps.one.output.confidence < 0.2"
        when: "input.text != ''"
        inputs: {s: $.steps.one.output}
      - id: group
        parallel:
          require: any
          steps:
            - {id: left, function: classify, inputs: {text: $.input.text}}
            - {id: right, function: classify, inputs: {text: left}}
      - id: first
        race:
          - {id: r1, function: classify, inputs: {text: $.input.text}}
      - id: each
        for_each: $.input.texts
        step: {function: classify, inputs: {text: $.item}}
      - id: talk
        debate: {agents: [argue, argue], topic: $.input.text, rounds: 1}
    result: $.steps.one.output
"""

V01 = """\
version: "0.2"
contracts:
  Out:
    v: {type: string}
    kind: {type: string, values: [a, b]}
functions:
  work:
    mode: infer
    intent: >
      Do the work.
    input:
      task: {type: string}
    output: Out
    ensure:
      - "result.v != ''"
    retries: 2
    budget: {ms: 500, usd: 0.001}
    model: openai/gpt-4.1-mini
  by_agent:
    mode: compute
    intent: Run the tests.
    input: {}
    output: Out
flows:
  main:
    input:
      task: {type: string}
    output: Out
    steps:
      - id: s1
        function: work
        inputs:
          task: "$.input.task"
      - id: s2
        function: by_agent
        inputs: {}
        depends_on: [s1]
        skip_if: "steps.s1.output.kind == 'a'"
"""


def test_a_version_1_plan_loads_into_typed_models() -> None:
    plan = load_plan_text(V1, source="v1.yaml")
    assert isinstance(plan, Plan)
    assert plan.source == "v1.yaml"
    assert plan.contracts["Sentiment"].fields["label"].enum == ("positive", "negative")
    classify = plan.functions["classify"]
    assert isinstance(classify, InferFunction)
    assert classify.output.type == "Sentiment"
    assert classify.context == ("Be brief.",)
    assert classify.ensure == ("result.confidence > 0.5",)
    assert isinstance(plan.functions["flag"], ComputeFunction)
    ask = plan.functions["ask"]
    assert isinstance(ask, HumanFunction)
    assert ask.timeout == 300
    assert ask.on_timeout is False
    kinds = [type(step) for step in plan.flows["main"].steps]
    assert kinds == [CallStep, CallStep, ParallelStep, RaceStep, ForEachStep, DebateStep]


def test_steps_are_normalised_from_the_key_they_have() -> None:
    steps = load_plan_text(V1).flows["main"].steps
    flagged = steps[1]
    assert isinstance(flagged, CallStep)
    assert flagged.depends_on == ("one",)
    assert flagged.when == "(input.text != '') and not (steps.one.output.confidence < 0.2)"
    group = steps[2]
    assert isinstance(group, ParallelStep)
    assert group.parallel.require == "any"
    assert [branch.id for branch in group.parallel.steps] == ["left", "right"]
    each = steps[4]
    assert isinstance(each, ForEachStep)
    assert each.step.id == "each"
    assert each.step.inputs == {"text": "$.item"}


def test_a_reference_format_0_2_plan_loads_unchanged() -> None:
    plan = load_plan_text(V01)
    assert plan.version == "0.2"
    assert plan.contracts["Out"].fields["kind"].enum == ("a", "b")
    work = plan.functions["work"]
    assert isinstance(work, InferFunction)
    assert work.intent == "Do the work.\n"
    assert work.budget is not None and work.budget.ms == 500
    by_agent = plan.functions["by_agent"]
    assert isinstance(by_agent, ComputeFunction) and by_agent.call is None and by_agent.expr is None
    s2 = plan.flows["main"].steps[1]
    assert isinstance(s2, CallStep)
    assert s2.when == "not (steps.s1.output.kind == 'a')"


def test_a_compute_function_without_call_or_expr_is_an_error_in_version_1() -> None:
    with pytest.raises(PlanError) as raised:
        load_plan_text(V01.replace('"0.2"', '"1"').replace("retries: 2", "retries: 1"), source="p.yaml")
    assert [str(p) for p in raised.value.problems] == [
        "p.yaml:19:3: functions.by_agent: a compute function needs 'call' or 'expr' "
        "(only reference plans, versions 0.1 to 0.3, leave compute functions to the calling agent)"
    ]


def test_the_text_hash_is_the_content_hash_of_the_text() -> None:
    assert load_plan_text(V1).text_hash == content_hash(V1)
    assert load_plan_text(V1 + "\n").text_hash != content_hash(V1)


def test_every_problem_of_every_pass_comes_in_one_sorted_error() -> None:
    text = V1.replace("intent: Classify.", "intent: Classify.\n    retires: 2").replace(
        "inputs: {s: $.steps.one.output}", "inputs: {s: $.steps.on.output}"
    )
    with pytest.raises(PlanError) as raised:
        load_plan_text(text, source="p.yaml")
    assert [str(p) for p in raised.value.problems] == [
        "p.yaml:11:5: functions.classify: unknown key 'retires' (did you mean 'retries'?)",
        "p.yaml:43:21: flows.main.steps[1].inputs.s: $.steps.on.output: unknown step 'on' (did you mean 'one'?)",
    ]
    assert str(raised.value).startswith("2 problems in plan\n")


def test_a_broken_function_does_not_hide_the_problems_of_the_others() -> None:
    text = V1.replace("    intent: Classify.\n", "").replace('expr: "s.label', 'expr: "s.lable')
    with pytest.raises(PlanError) as raised:
        load_plan_text(text, source="p.yaml")
    messages = [p.message for p in raised.value.problems]
    assert "missing required key 'intent'" in messages
    assert "expr: s.lable: contract 'Sentiment' has no field 'lable'" in messages


def test_load_plan_names_the_file_as_given_and_looks_up_call_modules_beside_it(tmp_path: Path) -> None:
    (tmp_path / "beside_tools_for_loader.py").write_text("def double(x):\n    return 2 * x\n", encoding="utf-8")
    plan_file = tmp_path / "p.stratum.yaml"
    plan_file.write_text(
        'version: "1"\nfunctions:\n  double:\n    mode: compute\n    input: {x: {type: integer}}\n'
        "    output: {type: integer}\n    call: beside_tools_for_loader:double\n",
        encoding="utf-8",
    )
    plan = load_plan(plan_file)
    assert plan.source == str(plan_file)
    assert isinstance(plan.functions["double"], ComputeFunction)


def test_unreadable_files_are_plan_errors(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as missing:
        load_plan(tmp_path / "absent.stratum.yaml")
    assert missing.value.problems[0].message.startswith("cannot read the plan:")
    binary = tmp_path / "binary.stratum.yaml"
    binary.write_bytes(b'version: "1"\n\xff\xfe\n')
    with pytest.raises(PlanError) as undecodable:
        load_plan(binary)
    assert str(undecodable.value.problems[0]) == f"{binary}:2:1: the plan is not UTF-8 text"


def test_load_plans_returns_the_good_plans_and_one_error_per_broken_plan(tmp_path: Path) -> None:
    (tmp_path / "good.stratum.yaml").write_text(V1, encoding="utf-8")
    (tmp_path / "also.stratum.yml").write_text(V01, encoding="utf-8")
    (tmp_path / "bad.stratum.yaml").write_text('version: "2"\n', encoding="utf-8")
    (tmp_path / "notes.yaml").write_text("not: a plan\n", encoding="utf-8")
    plans, errors = load_plans(tmp_path)
    assert sorted(Path(plan.source).name for plan in plans) == ["also.stratum.yml", "good.stratum.yaml"]
    assert len(errors) == 1
    assert errors[0].problems[0].file == str(tmp_path / "bad.stratum.yaml")


def test_find_plan_files_finds_both_suffixes_recursively_or_not(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.stratum.yaml", "b.stratum.yml", "sub/c.stratum.yaml", "d.yaml"):
        (tmp_path / name).write_text(V1, encoding="utf-8")
    assert [p.name for p in find_plan_files(tmp_path)] == ["a.stratum.yaml", "b.stratum.yml", "c.stratum.yaml"]
    assert [p.name for p in find_plan_files(tmp_path, recursive=False)] == ["a.stratum.yaml", "b.stratum.yml"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("24h", 86400), ("2d", 172800), ("1.5h", 5400), (90, 90)]
)
def test_durations_read_as_seconds(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_malformed_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("3 weeks")


def test_a_parallel_group_whose_steps_are_not_a_list_is_a_plan_error() -> None:
    # found by the property test: `steps: true` once crashed the loader with a TypeError
    text = """
version: "1"
functions:
  f: {mode: compute, input: {}, output: {type: string}, expr: "'x'"}
flows:
  g:
    input: {}
    steps:
      - id: group
        parallel: {require: all, steps: true}
"""
    with pytest.raises(PlanError):
        load_plan_text(text)


def test_a_plan_with_thousands_of_shape_errors_lists_the_first_200_and_counts_the_rest() -> None:
    functions = "".join(f"  f{i}: {{mode: infer, intent: 1, retries: x}}\n" for i in range(2_000))
    with pytest.raises(PlanError) as caught:
        load_plan_text(f'version: "1"\nfunctions:\n{functions}flows: {{}}\n', source="p.yaml")
    problems = caught.value.problems
    assert len(problems) == 500 and caught.value.more > 1_000
    assert str(caught.value).endswith(f"... and {caught.value.more} more problems")
    assert str(problems[0]).startswith("p.yaml:1:1: ... and more than 1000 more problems with the plan's structure")
