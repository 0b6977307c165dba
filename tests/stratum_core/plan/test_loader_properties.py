"""The loader only ever raises PlanError: valid plans mutated at random, and random text, never crash it.

Mutated plans are loaded with `check_imports=False`: a mutation may name any installed module as a `call:` target,
and importing arbitrary modules (some print, some open a browser) is not what this property is about.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inline_snapshot import snapshot

from stratum_core.errors import PlanError
from stratum_core.plan import Plan, load_plan_text
from stratum_core.plan._yaml import parse_yaml

ROOT = Path(__file__).parents[3]
TEXTS = [path.read_text(encoding="utf-8") for path in sorted((ROOT / "plans").glob("*.stratum.yaml"))]
DATA = [parse_yaml(text).data for text in TEXTS]

INTERESTING = st.sampled_from(
    [
        "$.input.text",
        "$.steps.sentiment.output",
        "$.steps.nope.output.label",
        "$.item",
        "$.",
        "$.steps",
        "result.confidence > 0.7",
        "len(text) <",
        "__import__('os').system('true')",
        "().__class__.__bases__[0].__subclasses__()",
        "9 ** 9 ** 9",
        "string",
        "any",
        "Sentiment",
        "infer",
        "compute",
        "human",
        "adaptive",
        "all",
        "24h",
        "0",
        "-1",
        "support_tools:keyword_sentiment",
        "",
    ]
)
SCALARS = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=20) | INTERESTING
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=8) | INTERESTING | st.integers(0, 3), children, max_size=3)
    ),
    max_leaves=8,
)
OPERATIONS = ("drop", "replace", "retype", "swap", "insert", "rename")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def _retype(value: Any) -> Any:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return "null"


@st.composite
def mutated_plans(draw: st.DrawFn) -> str:
    data = copy.deepcopy(draw(st.sampled_from(DATA)))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _parent(data, path), path[-1]
        operation = draw(st.sampled_from(OPERATIONS))
        if operation == "drop":
            del parent[last]
        elif operation == "replace":
            parent[last] = draw(VALUES)
        elif operation == "retype":
            parent[last] = _retype(parent[last])
        elif operation == "swap":
            other = draw(st.sampled_from(paths))
            other_parent = _parent(data, other)
            if other[: len(path)] != path and path[: len(other)] != other:
                parent[last], other_parent[other[-1]] = other_parent[other[-1]], parent[last]
        elif operation == "insert" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10) | INTERESTING)] = draw(VALUES)
        elif operation == "rename" and isinstance(parent[last], str):
            parent[last] = parent[last].replace(
                draw(st.sampled_from(["a", "e", ".", "_", "s"])), draw(st.text(max_size=2))
            )
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@st.composite
def damaged_texts(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        insert = draw(st.text(alphabet=st.sampled_from(list("{}[]:-&*!|>'\"#\n $.%@`,?~ \tab0")), max_size=12))
        text = text[:start] + insert + text[end:]
    return text


def _load(text: str) -> None:
    try:
        plan = load_plan_text(text, source="fuzz.yaml", check_imports=False)
    except PlanError as error:
        assert error.problems, "a PlanError always carries its problems"
        assert all(problem.line >= 1 and problem.column >= 1 for problem in error.problems)
    else:
        assert isinstance(plan, Plan)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_plans())
def test_mutated_plans_only_ever_raise_plan_errors(text: str) -> None:
    _load(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_texts())
def test_damaged_plan_text_only_ever_raises_plan_errors(text: str) -> None:
    _load(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | VALUES.map(lambda value: yaml.safe_dump(value, allow_unicode=True)))
def test_random_text_only_ever_raises_plan_errors(text: str) -> None:
    _load(text)


# --- hostile shapes: explicit YAML tags, long contract chains, lone surrogates, deep nesting ------------------------

TAGS = st.sampled_from(
    ["!!bool", "!!int", "!!float", "!!str", "!!null", "!!binary", "!!timestamp", "!!set", "!!omap", "!!pairs",
     "!!seq", "!!map", "!!python/object:os.system", "!!python/name:os.system", "!custom", "!", "!!merge"]
)  # fmt: skip
TAGGED_VALUES = st.sampled_from(['"1"', "1", "yes", "maybe", "1.5e400", "0x1F", "2026-13-45", "[1, 2]", "{a: 1}", "''"])


@st.composite
def tagged_plans(draw: st.DrawFn) -> str:
    """A plan's text with an explicit tag put before some of its values, e.g. `version: !!bool "1"`."""
    lines = draw(st.sampled_from(TEXTS)).splitlines()
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        key, colon, _rest = lines[index].partition(": ")
        if colon:
            lines[index] = f"{key}: {draw(TAGS)} {draw(TAGGED_VALUES)}"
    return "\n".join(lines) + "\n"


@st.composite
def contract_chains(draw: st.DrawFn) -> str:
    """Contracts nested in one another, up to 2,000 deep, sometimes closed into a cycle, used by a flow."""
    length = draw(st.integers(1, 2_000))
    last = draw(st.sampled_from(["{type: string}", "{type: C0}", "{type: array, items: {type: C0}}"]))
    body = "".join(f"  C{i}: {{x: {{type: C{i + 1}}}}}\n" for i in range(length - 1))
    body += f"  C{length - 1}: {{x: {last}}}\n"
    return (
        'version: "1"\ncontracts:\n' + body + "functions:\n  f: {mode: infer, intent: go, input: {}, output: C0}\n"
        "flows:\n  go: {input: {}, steps: [{id: s, function: f, inputs: {}}]}\n"
    )


@st.composite
def with_surrogates(draw: st.DrawFn) -> str:
    """A plan's text with lone surrogates (invalid in UTF-8) put anywhere, in keys, values or comments."""
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["\ud800", "\udfff", "\udc80x", "# \ud83d\n"])) + text[at:]
    return text


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    """Flow mappings, lists, sub-flow properties or expressions nested hundreds to thousands of levels deep."""
    depth = draw(st.integers(50, 3_000))
    kind = draw(st.sampled_from(["list", "map", "properties", "expression"]))
    if kind == "list":
        return 'version: "1"\nflows: ' + "[" * depth + "]" * depth + "\n"
    if kind == "map":
        return 'version: "1"\ndescription: ' + "{a: " * depth + "1" + "}" * depth + "\n"
    if kind == "properties":
        spec = "{type: object, properties: {a: " * depth + "{type: string}" + "}}" * depth
        return f'version: "1"\ncontracts:\n  C: {{x: {spec}}}\nflows: {{}}\n'
    return (
        'version: "1"\nfunctions:\n  f: {mode: compute, input: {}, output: {type: any}, expr: "'
        + "(" * depth
        + "1"
        + ")" * depth
        + '"}\nflows: {}\n'
    )


HOSTILE = tagged_plans() | contract_chains() | with_surrogates() | deep_nesting()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HOSTILE, st.booleans())
def test_hostile_plan_text_only_ever_raises_plan_errors(text: str, untrusted: bool) -> None:
    try:
        plan = load_plan_text(text, source="hostile.yaml", check_imports=False, untrusted=untrusted)
    except PlanError as error:
        assert error.problems, "a PlanError always carries its problems"
        assert all(problem.line >= 1 and problem.column >= 1 for problem in error.problems)
    else:
        assert isinstance(plan, Plan)


def test_a_tag_a_value_cannot_take_is_a_plan_error() -> None:
    with pytest.raises(PlanError) as caught:
        load_plan_text('version: !!bool "1"\nflows: {}\n', source="p.yaml")
    assert str(caught.value.problems[0]) == snapshot(
        "p.yaml:1:10: version: '1' is not a valid !!bool value (remove the tag or fix the value)"
    )


def test_a_chain_of_1500_contracts_is_a_plan_error_naming_the_chain() -> None:
    body = "".join(f"  C{i}: {{x: {{type: C{i + 1}}}}}\n" for i in range(1_500)) + "  C1500: {x: {type: string}}\n"
    with pytest.raises(PlanError) as caught:
        load_plan_text(f'version: "1"\ncontracts:\n{body}flows: {{}}\n', source="p.yaml")
    assert [str(problem) for problem in caught.value.problems] == snapshot(
        [
            "p.yaml:3:3: contracts.C0: contracts nest more than 32 levels deep from here (C0 -> C1 -> C2 -> C3 -> ...) "
            "(flatten the nesting)"
        ]
    )


def test_a_lone_surrogate_is_a_plan_error_at_its_position() -> None:
    with pytest.raises(PlanError) as caught:
        load_plan_text('version: "1"\ndescription: "a\ud800"\nflows: {}\n', source="p.yaml")
    assert str(caught.value.problems[0]) == snapshot(
        "p.yaml:2:16: the plan holds a lone surrogate character, which is not valid text"
    )


def test_aliases_are_bounded_by_the_characters_they_expand_to() -> None:
    text = 'version: "1"\ndescription: &a "' + "x" * 20_000 + '"\nx: &b [' + ", ".join(["*a"] * 100) + "]\nflows: {}\n"
    with pytest.raises(PlanError) as caught:
        load_plan_text(text, source="p.yaml", untrusted=True)
    assert str(caught.value.problems[0]) == snapshot(
        "p.yaml:3:200: x[48]: the document is too large (more than 1000000 characters after expanding aliases) "
        "(an alias repeats all of its anchor's text)"
    )
