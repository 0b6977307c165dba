"""Every ```yaml block of docs/plan-language.md is a complete plan that loads, or fails as its `# invalid:` says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stratum_core.errors import PlanError
from stratum_core.plan import load_plan_text

ROOT = Path(__file__).parents[3]
DOC = ROOT / "docs" / "plan-language.md"
BLOCKS = re.findall(r"^```yaml\n(.*?)^```$", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
INVALID = "# invalid: "


def _without_location(text: str) -> str:
    return text.split(": ", 1)[1]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{index}" for index in range(len(BLOCKS))])
def test_doc_example_loads_or_fails_as_marked(block: str) -> None:
    first = block.splitlines()[0]
    if not first.startswith(INVALID):
        load_plan_text(block, source="doc", base_dir=ROOT / "plans")
        return
    expected = first.removeprefix(INVALID)
    with pytest.raises(PlanError) as raised:
        load_plan_text(block, source="doc", base_dir=ROOT / "plans")
    found = [_without_location(str(problem)) for problem in raised.value.problems]
    assert expected in found


def test_the_doc_has_examples_of_both_kinds() -> None:
    invalid = [block for block in BLOCKS if block.startswith(INVALID)]
    assert len(BLOCKS) > 20
    assert 5 < len(invalid) < len(BLOCKS)
