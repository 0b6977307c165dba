from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from server_helpers import REPO_PLANS, TEST_PLANS

from server._catalog import DESCRIPTION_LIMIT, PlanFolder, argument_errors, tool_name_for

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def write_plan(folder: Path, name: str, flows: dict[str, str], *, description: str = "x") -> Path:
    body = "\n".join(
        f"  {flow}:\n    description: {desc}\n    input: {{text: {{type: string}}}}\n    output: {{type: string}}\n"
        f"    steps:\n      - {{id: s, function: same, inputs: {{text: $.input.text}}}}"
        for flow, desc in flows.items()
    )
    text = textwrap.dedent(
        f"""\
        version: "1"
        description: {description}
        functions:
          same:
            mode: compute
            input: {{text: {{type: string}}}}
            output: {{type: string}}
            expr: "text"
        flows:
        """
    )
    path = folder / f"{name}.stratum.yaml"
    path.write_text(text + body + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("flow", "tool"),
    [("triage", "triage"), ("review.code", "review_code"), ("a b/c", "a_b_c"), ("x" * 80, "x" * 64), ("...", "flow")],
)
def test_tool_names_are_derived_from_flow_names_and_fit_mcp_clients(flow: str, tool: str) -> None:
    assert tool_name_for(flow) == tool
    assert TOOL_NAME.match(tool_name_for(flow))


@pytest.mark.parametrize("plans", [TEST_PLANS, REPO_PLANS], ids=["test-plans", "repo-plans"])
def test_every_flow_becomes_a_tool_with_object_rooted_schemas(plans: Path) -> None:
    folder = PlanFolder(plans)
    folder.scan()
    flows = {flow for entry in folder.catalog.plans.values() if entry.plan for flow in entry.plan.flows}
    assert flows and {tool.flow.name for tool in folder.catalog.tools.values()} == flows
    for tool in folder.catalog.tools.values():
        assert TOOL_NAME.match(tool.name)
        assert tool.input_schema["type"] == "object"
        assert not {"anyOf", "oneOf", "allOf"} & set(tool.input_schema)
        Draft202012Validator.check_schema(tool.input_schema)
        if tool.output_schema is not None:
            assert tool.output_schema["type"] == "object"
            Draft202012Validator.check_schema(tool.output_schema)
        assert tool.tool.description and len(tool.tool.description) <= DESCRIPTION_LIMIT


def test_a_primitive_output_is_wrapped_as_result_in_schema_and_content() -> None:
    folder = PlanFolder(TEST_PLANS)
    folder.scan()
    tool = folder.catalog.tools["is_long"]
    assert tool.wraps_output
    assert tool.output_schema is not None
    assert tool.output_schema["properties"]["result"] == {"type": "boolean"}
    assert tool.output_schema["required"] == ["result"]
    assert tool.structured(True) == {"result": True}
    echo = folder.catalog.tools["echo"]
    assert not echo.wraps_output and echo.structured({"text": "a", "length": 1}) == {"text": "a", "length": 1}


def test_annotations_say_whether_a_flow_reaches_beyond_the_server() -> None:
    folder = PlanFolder(TEST_PLANS)
    folder.scan()
    tools = folder.catalog.tools
    assert tools["mood"].tool.annotations is not None and tools["mood"].tool.annotations.open_world_hint is True
    echo = tools["echo"].tool.annotations
    assert echo is not None
    assert (echo.open_world_hint, echo.destructive_hint, echo.read_only_hint, echo.idempotent_hint) == (
        False,
        False,
        False,
        False,
    )
    assert tools["echo"].tool.title == "Echo"


def test_descriptions_are_cut_to_claude_codes_limit(tmp_path: Path) -> None:
    write_plan(tmp_path, "long", {"wordy": "w" * 5000})
    folder = PlanFolder(tmp_path)
    folder.scan()
    description = folder.catalog.tools["wordy"].tool.description
    assert description is not None and len(description) == DESCRIPTION_LIMIT and description.endswith("…")


def test_a_flow_name_two_plans_share_is_served_for_each_under_its_plans_name(tmp_path: Path) -> None:
    first = write_plan(tmp_path, "first", {"shared": "one", "only_first": "a"})
    second = write_plan(tmp_path, "second", {"shared": "two"})
    folder = PlanFolder(tmp_path)
    folder.scan()
    tools = folder.catalog.tools
    assert set(tools) == {"only_first", "first_shared", "second_shared"}
    assert (tools["first_shared"].path, tools["second_shared"].path) == (first, second)
    assert tools["first_shared"].flow.name == tools["second_shared"].flow.name == "shared"
    [problem] = [p for p in folder.catalog.problems if "shared" in p]
    assert f"{first} (flow 'shared') as 'first_shared'" in problem and str(second) in problem


def test_a_qualified_name_that_still_clashes_serves_none_of_its_claimants(tmp_path: Path) -> None:
    write_plan(tmp_path, "a", {"b_c": "one"})
    write_plan(tmp_path, "a_b", {"c": "two"})
    write_plan(tmp_path, "x", {"c": "three", "a_b_c": "four"})
    folder = PlanFolder(tmp_path)
    folder.scan()
    assert set(folder.catalog.tools) == {"b_c", "x_c"}
    assert any("none of them is served" in p and "a_b_c" in p for p in folder.catalog.problems)


def test_a_flow_may_not_take_the_resume_tools_name(tmp_path: Path) -> None:
    write_plan(tmp_path, "sneaky", {"stratum_resume": "takeover"})
    folder = PlanFolder(tmp_path)
    folder.scan()
    assert folder.catalog.tools == {}
    assert any("reserved" in p for p in folder.catalog.problems)


def test_a_broken_plan_is_skipped_with_its_problems_and_the_others_are_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_plan(tmp_path, "good", {"fine": "ok"})
    (tmp_path / "broken.stratum.yaml").write_text("version: '1'\nflows:\n  bad: {steps: [{id: a, function: nope}]}\n")
    folder = PlanFolder(tmp_path)
    folder.scan()
    assert set(folder.catalog.tools) == {"fine"}
    assert folder.catalog.plans["broken"].error is not None
    assert "nope" in folder.catalog.plans["broken"].error
    assert any("broken.stratum.yaml" in record.getMessage() for record in caplog.records)


def test_scanning_again_reloads_only_what_changed(tmp_path: Path) -> None:
    path = write_plan(tmp_path, "p", {"one": "first"})
    folder = PlanFolder(tmp_path)
    assert folder.scan() is True
    assert folder.scan() is False
    path.touch()  # same content: nothing to announce
    assert folder.scan() is False
    write_plan(tmp_path, "p", {"one": "first", "two": "second"})
    assert folder.scan() is True and set(folder.catalog.tools) == {"one", "two"}
    path.unlink()
    assert folder.scan() is True and folder.catalog.tools == {}


def test_argument_errors_give_one_line_per_offending_field() -> None:
    folder = PlanFolder(TEST_PLANS)
    folder.scan()
    tool = folder.catalog.tools["echo"]
    assert tool.argument_errors({"text": "fine"}) == []
    assert tool.argument_errors({"text": 5}) == ["text: 5 is not of type 'string'"]
    assert tool.argument_errors({}) == ["text: required field is missing"]
    assert tool.argument_errors({"text": "a", "extra": 1, "more": 2}) == [
        "extra: unknown field (expected: text)",
        "more: unknown field (expected: text)",
    ]
    nested = Draft202012Validator(
        {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}}}
    )
    assert argument_errors(nested, {"a": {"b": "x"}}) == ["a.b: 'x' is not of type 'integer'"]


def test_a_flow_without_a_title_gets_one_from_its_name_and_a_written_one_wins(tmp_path: Path) -> None:
    write_plan(tmp_path, "titles", {"review_code": "Review a diff.", "plain": "p"})
    folder = PlanFolder(tmp_path)
    folder.scan()
    tools = folder.catalog.tools
    assert tools["review_code"].tool.title == "Review code"
    assert tools["review_code"].tool.annotations is not None
    assert tools["review_code"].tool.annotations.title == "Review code"
    assert tools["plain"].tool.title == "Plain"
    repo = PlanFolder(REPO_PLANS)
    repo.scan()
    assert all(tool.tool.title for tool in repo.catalog.tools.values())


def test_argument_errors_show_the_first_twenty_then_count_the_rest() -> None:
    items = Draft202012Validator({"type": "array", "items": {"type": "integer"}})
    lines = argument_errors(items, ["x"] * 100)
    assert len(lines) == 21 and lines[-1] == "... and 80 more"
    assert argument_errors(items, ["x"] * 5_000)[-1] == "... and more than 1000 more"
    many_fields = Draft202012Validator({"type": "object", "properties": {}, "additionalProperties": False})
    lines = argument_errors(many_fields, {f"f{i:03}": 1 for i in range(50)})
    assert len(lines) == 21 and lines[-1] == "... and 30 more"
