"""The loader only ever raises PlanError: valid plans mutated at random, and random text, never crash it.

Mutated plans are loaded with `check_imports=False`: a mutation may name any installed module as a `call:` target,
and importing arbitrary modules (some print, some open a browser) is not what this property is about.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
