"""Every ```python block of docs/library.md imports: its contracts, functions and flows pass the decoration checks."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratum_core.errors import PlanError
from stratum_core.library import FlowFn, configure, export_plan
from stratum_core.store import MemoryRunStore

DOC = Path(__file__).resolve().parents[3] / "docs" / "library.md"
EXPORTS = {"triage", "review_code", "approve"}  # the doc's flows that export; the others show Python-only code
BLOCKS = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)  # a block may configure a store file: it lands here
    yield tmp_path
    configure(store=MemoryRunStore())


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_doc_block_imports(index: int, in_tmp: Path) -> None:
    name = f"library_doc_block_{index}"
    path = in_tmp / f"{name}.py"
    path.write_text(BLOCKS[index], encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        for flow in [value for value in vars(module).values() if isinstance(value, FlowFn)]:
            if flow.name in EXPORTS:
                assert "steps:" in export_plan(module, flow.name)
            else:
                with pytest.raises(PlanError, match="cannot be exported"):
                    export_plan(module, flow.name)
    finally:
        del sys.modules[name]


def test_the_doc_has_blocks_for_every_part_of_the_api() -> None:
    text = "\n".join(BLOCKS)
    for name in (
        "@contract",
        "@infer",
        "@refine",
        "@compute",
        "@flow",
        "parallel(",
        "race(",
        "debate(",
        "await_human(",
        "configure(",
    ):
        assert name in text, name
