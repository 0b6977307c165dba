"""Values past Temporal's payload limit (2 MB) cross it by reference to the run store, and arrive whole."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import Client

from stratum_core.backends._payloads import REFERENCE_KEY, packed, unpacked
from stratum_core.backends.temporal import TemporalEngine
from stratum_core.plan import load_plan
from stratum_core.store import SQLiteRunStore
from tests.stratum_core.backends.temporal.conftest import TEMPORAL_TEST_TIMEOUT

pytestmark = pytest.mark.timeout(TEMPORAL_TEST_TIMEOUT, method="thread")

PLAN = """\
version: "1"
contracts:
  Stats:
    chars: {type: integer}
    head: {type: string}
functions:
  shout:
    mode: compute
    input: {text: {type: string}}
    output: string
    call: big_tools:shout
  measure:
    mode: compute
    input: {text: {type: string}}
    output: Stats
    call: big_tools:measure
flows:
  big:
    input: {text: {type: string}}
    output: Stats
    steps:
      - id: loud
        function: shout
        inputs: {text: $.input.text}
      - id: stats
        function: measure
        inputs: {text: $.steps.loud.output}
"""

TOOLS = """\
def shout(text: str) -> str:
    return text.upper()


def measure(text: str) -> dict[str, object]:
    return {"chars": len(text), "head": text[:12]}
"""


async def test_a_five_megabyte_input_and_output_cross_temporal_by_reference(
    temporal_engine: TemporalEngine, client: Client, tmp_path: Path
) -> None:
    (tmp_path / "big.stratum.yaml").write_text(PLAN, encoding="utf-8")
    (tmp_path / "big_tools.py").write_text(TOOLS, encoding="utf-8")
    text = "stratum " * (5 * 1024 * 1024 // 8)  # 5 MB: over Temporal's 2 MB limit for one payload
    result = await temporal_engine.run(load_plan(tmp_path / "big.stratum.yaml"), "big", {"text": text})
    assert result.status == "succeeded", result.error
    assert result.output == {"chars": len(text), "head": "STRATUM STRA"}
    store = temporal_engine.store
    steps = {s.step_id: s for s in store.get_steps(result.run_id)}
    assert steps["loud"].output == text.upper()  # the trace holds the value itself, not the reference
    # what Temporal holds is small: references, never the values (it would have refused a 5 MB payload anyway)
    handle = client.get_workflow_handle(f"stratum-run-{result.run_id}")
    history = (await handle.fetch_history()).to_json()
    assert len(history) < 200_000
    payloads = [
        json.loads(base64.b64decode(payload["data"]))
        for event in json.loads(history)["events"]
        for key in ("activityTaskScheduledEventAttributes", "activityTaskCompletedEventAttributes")
        if key in event
        for payload in event[key].get("input", event[key].get("result", {})).get("payloads", [])
    ]
    references = [p.get("inputs", p.get("output")) for p in payloads if isinstance(p, dict)]
    assert sum(1 for r in references if isinstance(r, dict) and REFERENCE_KEY in r) >= 3  # inputs and outputs


def test_a_small_value_travels_as_json_text_with_its_key_order(tmp_path: Path) -> None:
    with SQLiteRunStore(tmp_path / "runs.db") as store:
        value = {"zeta": 1, "alpha": [1, 2]}
        assert packed(store, value, threshold=1000) == '{"zeta":1,"alpha":[1,2]}'
        assert list(unpacked(store, packed(store, value, threshold=1000))) == ["zeta", "alpha"]
        reference = packed(store, value, threshold=5)
        assert isinstance(reference, dict) and reference["bytes"] == 24
        assert unpacked(store, reference) == value
