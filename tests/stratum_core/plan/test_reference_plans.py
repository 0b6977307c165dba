# ruff: noqa: E501  (snapshot lines are whole problem lines)
"""Reference plans (IR 0.1, 0.2, 0.3) load by their own version's rules, and their invalid shapes are refused."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from inline_snapshot import snapshot

from stratum_core.errors import PlanError
from stratum_core.plan import CallStep, ComputeFunction, HumanFunction, InferFunction, load_plan, load_plan_text
from stratum_core.plan._reference import reference_expression
from stratum_core.plan._reference_schema import REFERENCE_VERSIONS, reference_schema
from stratum_core.plan._yaml import parse_yaml

CORPUS = Path(__file__).parents[2] / "fixtures" / "reference"
PLANS = sorted(CORPUS.glob("*.stratum.yaml"))


def _schema_keys(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(where, key) for every property the schema declares: where is the kind of object that has the key."""
    if isinstance(node, Mapping):
        for key, child in (node.get("properties") or {}).items():
            yield where, key
            yield from _schema_keys(child, key)
        for key in ("additionalProperties", "items"):
            if isinstance(node.get(key), Mapping):
                yield from _schema_keys(node[key], where)


def _used_keys(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, Mapping):
        for key, child in node.items():
            yield where, str(key)
            yield from _used_keys(child, str(key))
    elif isinstance(node, list):
        for child in node:
            yield from _used_keys(child, where)


@pytest.mark.parametrize("path", PLANS, ids=[p.name for p in PLANS])
def test_every_plan_of_the_reference_corpus_loads(path: Path) -> None:
    plan = load_plan(path)
    assert plan.version in REFERENCE_VERSIONS
    assert all(flow.sequential for flow in plan.flows.values())


def _corpus_keys(versions: tuple[str, ...]) -> set[str]:
    used: set[str] = set()
    for path in PLANS:
        data = parse_yaml(path.read_text(encoding="utf-8")).data
        if data["version"] in versions:
            used |= {key for _, key in _used_keys(data)}
    return used


@pytest.mark.parametrize("version", REFERENCE_VERSIONS)
def test_the_corpus_uses_every_key_of_each_version(version: str) -> None:
    index = REFERENCE_VERSIONS.index(version)
    keys = {key for _, key in _schema_keys(reference_schema(version))}
    earlier = {key for _, key in _schema_keys(reference_schema(REFERENCE_VERSIONS[index - 1]))} if index else set()
    assert keys - earlier - _corpus_keys((version,)) == set()  # what the version adds, in a plan of that version
    assert keys - _corpus_keys(REFERENCE_VERSIONS[: index + 1]) == set()  # and the rest in an earlier version's


def test_retries_in_reference_plans_count_attempts() -> None:
    plan = load_plan(CORPUS / "v01_review.stratum.yaml")
    review = plan.functions["security_review"]
    assert isinstance(review, InferFunction) and review.retries == 1  # `retries: 2` is two attempts
    tests = plan.functions["run_tests"]
    assert isinstance(tests, ComputeFunction) and tests.retries == 2  # the default: three attempts


def test_a_gate_function_becomes_a_human_step_with_its_routing() -> None:
    plan = load_plan(CORPUS / "v02_publish.stratum.yaml")
    review = plan.functions["review"]
    assert isinstance(review, HumanFunction) and review.timeout == 3600
    assert review.on_timeout == {"outcome": "kill", "rationale": "timeout"}
    approve = plan.flows["publish"].steps[3]
    assert isinstance(approve, CallStep) and approve.route is not None
    assert (approve.route.gate, approve.route.on_revise, approve.route.on_approve) == (True, "draft", None)
    assert plan.workflow is not None and plan.workflow.flow == "publish"
    assert plan.flows["publish"].max_rounds == 3


def test_inline_steps_and_output_schemas_get_functions_of_their_own() -> None:
    plan = load_plan(CORPUS / "v02_publish.stratum.yaml")
    polish = plan.functions["polish@publish"]
    assert isinstance(polish, InferFunction)
    assert (polish.retries, polish.guardrails, polish.model) == (1, ("lorem ipsum",), "openai/gpt-4.1-mini")
    v01 = load_plan(CORPUS / "v01_review.stratum.yaml")
    assert v01.functions["sec@review"].output_schema == {
        "type": "object",
        "properties": {"findings": {"type": "string", "minLength": 1}},
    }


def test_skip_if_keeps_its_dollar_references_and_json_literals() -> None:
    assert reference_expression("$.steps.a.output.ok == true and $.input.x != null") == (
        "steps.a.output.ok == True and input.x != None"
    )
    assert reference_expression("'$.steps.a' == \"true\"") == "'$.steps.a' == \"true\""


INVALID = {
    "0.2 key in 0.1": (
        """\
version: "0.1"
contracts:
  Out: {text: {type: string}}
functions:
  f: {mode: infer, intent: Do it., input: {}, output: Out}
flows:
  main:
    input: {}
    output: Out
    steps:
      - {id: a, function: f, inputs: {}, on_fail: a}
"""
    ),
    "0.3 key in 0.2": (
        """\
version: "0.2"
flows:
  main:
    input: {}
    steps:
      - {id: a, intent: Do it., type: inline}
"""
    ),
    "gate without on_revise": (
        """\
version: "0.2"
functions:
  ok: {mode: gate}
flows:
  main:
    input: {}
    steps:
      - {id: g, function: ok, on_approve: null, on_kill: null}
"""
    ),
    "gate with ensure and a step with on_fail that cannot trigger": (
        """\
version: "0.2"
contracts:
  Out: {text: {type: string}}
functions:
  ok: {mode: gate, ensure: ["True"]}
  f: {mode: infer, intent: Do it., output: Out}
flows:
  main:
    input: {}
    steps:
      - {id: a, function: f, on_fail: b}
      - {id: g, function: ok, on_approve: null, on_revise: a, on_kill: nowhere}
"""
    ),
    "step-level keys on a function step": (
        """\
version: "0.2"
contracts:
  Out: {text: {type: string}}
functions:
  f: {mode: infer, intent: Do it., output: Out}
flows:
  main:
    input: {}
    steps:
      - {id: a, function: f, retries: 2, intent: Also this.}
"""
    ),
    "undefined output contract and bad guardrail": (
        """\
version: "0.2"
functions:
  f: {mode: infer, intent: Do it., output: Missing, guardrails: ["(a)\\\\1"]}
flows:
  main:
    input: {}
    steps:
      - {id: a, function: f}
"""
    ),
    "parallel steps missing their keys": (
        """\
version: "0.3"
flows:
  main:
    input: {}
    steps:
      - {id: plan, type: decompose, intent: Split it.}
      - {id: work, type: parallel_dispatch, max_concurrent: 0}
"""
    ),
    "unquoted version": "version: 0.2\n",
}


@pytest.mark.parametrize("name", INVALID)
def test_the_reference_invalid_shapes_are_refused_with_located_messages(name: str) -> None:
    with pytest.raises(PlanError) as raised:
        load_plan_text(INVALID[name], source="ref.stratum.yaml")
    assert [str(problem) for problem in raised.value.problems] == EXPECTED[name]


EXPECTED = {
    "0.2 key in 0.1": snapshot(
        [
            "ref.stratum.yaml:11:42: flows.main.steps[0]: unknown key 'on_fail' ('on_fail' exists from version \"0.2\" on; this plan says version \"0.1\")"
        ]
    ),
    "0.3 key in 0.2": snapshot(
        [
            "ref.stratum.yaml:6:33: flows.main.steps[0]: unknown key 'type' ('type' exists from version \"0.3\" on; this plan says version \"0.2\")"
        ]
    ),
    "gate without on_revise": snapshot(["ref.stratum.yaml:8:9: flows.main.steps[0]: gate step 'g' needs on_revise"]),
    "gate with ensure and a step with on_fail that cannot trigger": snapshot(
        [
            "ref.stratum.yaml:5:28: functions.ok.ensure: a gate function cannot have 'ensure' (a person decides a gate)",
            "ref.stratum.yaml:11:39: flows.main.steps[0].on_fail: on_fail can never trigger (add ensure, guardrails or output_schema to the step or its function)",
            "ref.stratum.yaml:11:39: flows.main.steps[0].on_fail: on_fail names an unknown step 'b'",
            "ref.stratum.yaml:12:72: flows.main.steps[1].on_kill: on_kill names an unknown step 'nowhere'",
        ]
    ),
    "step-level keys on a function step": snapshot(
        [
            "ref.stratum.yaml:10:9: flows.main.steps[0]: step 'a' needs exactly one of 'function', 'intent' and 'flow' (it has function, intent)",
            "ref.stratum.yaml:10:39: flows.main.steps[0].retries: 'retries' must be on the function, not the step",
        ]
    ),
    "undefined output contract and bad guardrail": snapshot(
        [
            "ref.stratum.yaml:3:44: functions.f.output: output contract 'Missing' not defined (declare it under contracts)",
            "ref.stratum.yaml:3:66: functions.f.guardrails[0]: guardrail '(a)\\\\1' is not a valid regular expression: invalid escape sequence: \\1",
        ]
    ),
    "parallel steps missing their keys": snapshot(
        ["ref.stratum.yaml:7:61: flows.main.steps[1].max_concurrent: must be at least 1, got 0"]
    ),
    "unquoted version": snapshot(
        ['ref.stratum.yaml:1:10: version: version must be "1", "0.1", "0.2" or "0.3", got 0.2 (a quoted string)']
    ),
}


def test_file_checks_are_refused_in_plans_sent_by_a_client() -> None:
    text = """\
version: "0.1"
contracts:
  Out: {path: {type: string}}
functions:
  f: {mode: infer, intent: Write a file., input: {}, output: Out, ensure: ["file_exists(result.path)"]}
flows:
  main:
    input: {}
    output: Out
    steps:
      - {id: a, function: f, inputs: {}}
"""
    assert load_plan_text(text).functions["f"].file_ensure == ("file_exists(result.path)",)
    with pytest.raises(PlanError) as raised:
        load_plan_text(text, source="sent.stratum.yaml", untrusted=True)
    assert [str(problem) for problem in raised.value.problems] == snapshot(
        [
            "sent.stratum.yaml:5:75: functions.f.ensure: ensure: file_exists(result.path): file checks read the project's files (a plan sent by a client cannot use file_exists, file_contains or no_file_conflicts)"
        ]
    )


def test_a_diamond_of_sub_flows_is_not_mistaken_for_recursion() -> None:
    plan = load_plan_text(
        """\
version: "0.2"
contracts:
  Out: {text: {type: string}}
flows:
  leaf:
    input: {}
    steps:
      - {id: x, intent: Leaf., output_contract: Out}
  mid:
    input: {}
    steps:
      - {id: one, flow: leaf}
      - {id: two, flow: leaf}
  main:
    input: {}
    steps:
      - {id: m, flow: mid}
"""
    )
    assert set(plan.flows) == {"leaf", "mid", "main"}
