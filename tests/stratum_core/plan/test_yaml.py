from __future__ import annotations

import pytest

from stratum_core.errors import PlanError
from stratum_core.plan._yaml import MAX_DEPTH, format_path, parse_yaml


def _messages(text: str) -> list[str]:
    with pytest.raises(PlanError) as raised:
        parse_yaml(text, source="p.yaml")
    return [str(problem) for problem in raised.value.problems]


def test_keys_and_values_keep_their_one_based_line_and_column() -> None:
    parsed = parse_yaml("a: 1\nb:\n  - x\n  - {c: 'q'}\n")
    assert parsed.data == {"a": 1, "b": ["x", {"c": "q"}]}
    assert parsed.source_map.key(("a",)) == (1, 1)
    assert parsed.source_map.value(("a",)) == (1, 4)
    assert parsed.source_map.value(("b", 0)) == (3, 5)
    assert parsed.source_map.key(("b", 1, "c")) == (4, 6)
    assert parsed.source_map.value(("b", 1, "c")) == (4, 9)
    assert parsed.source_map.styles[("b", 1, "c")] == "'"


def test_an_unlocated_path_falls_back_to_its_nearest_located_ancestor() -> None:
    parsed = parse_yaml("a:\n  b: 1\n")
    assert parsed.source_map.value(("a", "b", "missing", 3)) == (2, 6)
    assert parsed.source_map.key(()) == (1, 1)


def test_duplicate_keys_are_reported_and_the_first_value_is_kept() -> None:
    parsed = parse_yaml("a: 1\nb: 2\na: 3\n", source="p.yaml")
    assert parsed.data == {"a": 1, "b": 2}
    assert [str(p) for p in parsed.problems] == ["p.yaml:3:1: a: duplicate key 'a' (first given on line 1)"]


def test_keys_that_are_not_strings_are_refused() -> None:
    parsed = parse_yaml("1: one\non: two\n? [x]\n: three\nok: 4\n", source="p.yaml")
    assert parsed.data == {"ok": 4}
    assert [str(p) for p in parsed.problems] == [
        "p.yaml:1:1: keys must be strings, got 1 (write '1' in quotes)",
        "p.yaml:2:1: keys must be strings, got true (write 'on' in quotes)",
        "p.yaml:3:3: keys must be strings, got a mapping or a list",
    ]


def test_scalars_are_plain_values_and_timestamps_stay_text() -> None:
    parsed = parse_yaml("i: 3\nf: 0.5\nb: true\nn: ~\nd: 2024-01-31\ns: '3'\n")
    assert parsed.data == {"i": 3, "f": 0.5, "b": True, "n": None, "d": "2024-01-31", "s": "3"}


def test_tags_that_build_objects_are_refused() -> None:
    assert _messages("a: !!python/object/apply:os.system [ls]\n") == [
        "p.yaml:1:4: a: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' "
        "(plans use plain YAML values only)"
    ]
    assert _messages("a: !!set {x}\n")[0].startswith("p.yaml:1:4: a: unsupported YAML tag")


def test_syntax_errors_are_located_at_the_problem() -> None:
    assert _messages("a: [1, 2\nb: 3\n") == [
        "p.yaml:2:2: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence)"
    ]


def test_a_file_holds_exactly_one_non_empty_document() -> None:
    assert _messages("") == ["p.yaml:1:1: the plan is empty"]
    assert _messages("# only a comment\n") == ["p.yaml:1:1: the plan is empty"]
    assert _messages("a: 1\n---\nb: 2\n") == [
        "p.yaml:2:1: a plan file holds one YAML document (remove the second '---' document)"
    ]


def test_an_alias_bomb_is_refused_quickly_by_counting_expanded_nodes() -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for index in range(1, 9):
        previous, name = chr(ord("a") + index - 1), chr(ord("a") + index)
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    messages = _messages("\n".join(levels) + "\n")
    assert len(messages) == 1
    assert "the document is too large (more than 250000 values after expanding aliases)" in messages[0]


def test_a_recursive_alias_is_refused() -> None:
    assert _messages("a: &a [1, *a]\n") == ["p.yaml:1:11: a[1]: alias '*a' refers to a node that contains it"]


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    messages = _messages("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert messages[0].endswith(f"nesting is too deep (more than {MAX_DEPTH} levels)")


def test_aliases_expand_to_copies_positioned_at_the_anchored_text() -> None:
    parsed = parse_yaml("base: &b {x: 1}\nuse: *b\n")
    assert parsed.data == {"base": {"x": 1}, "use": {"x": 1}}
    assert parsed.data["use"] is not parsed.data["base"]
    assert parsed.source_map.value(("use",)) == (2, 6)
    assert parsed.source_map.value(("use", "x")) == (1, 14)


def test_merge_keys_fill_in_missing_keys_only() -> None:
    parsed = parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert parsed.data["other"] == {"y": 3, "x": 1}
    assert parsed.source_map.value(("other", "x")) == (1, 14)


def test_control_characters_are_refused_as_invalid_yaml() -> None:
    assert _messages("a: \x00\n") == ["p.yaml:1:4: invalid YAML: control characters are not allowed"]


def test_paths_are_formatted_with_dots_and_indexes() -> None:
    assert format_path(("flows", "triage", "steps", 2, "inputs", "text")) == "flows.triage.steps[2].inputs.text"
    assert format_path((0, "a")) == "[0].a"
    assert format_path(()) == ""
