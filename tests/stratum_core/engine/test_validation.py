from __future__ import annotations

from stratum_core.engine._validation import schema_violations

SCHEMA = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "integer"}}}}


def test_schema_violations_show_ten_lines_then_count_the_rest() -> None:
    lines = schema_violations({"items": ["x"] * 50}, SCHEMA)
    assert lines[:2] == [
        'schema: result.items[0]: expected integer, got "x"',
        'schema: result.items[1]: expected integer, got "x"',
    ]
    assert len(lines) == 11 and lines[-1] == "schema: ... and 40 more"


def test_a_huge_bad_value_is_counted_only_so_far() -> None:
    lines = schema_violations({"items": ["x"] * 200_000}, SCHEMA)
    assert len(lines) == 11 and lines[-1] == "schema: ... and more than 1000 more"
