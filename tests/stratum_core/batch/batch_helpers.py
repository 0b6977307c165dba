"""A triage plan, 200 items with scripted faults, and the test LLM's rule that answers them.

Item i's text is `item i`; its fault comes from i % 10: 3 is rate limited (429) once, then answered; 5 always gets
broken JSON (ParseFailure); 7 always breaks the `ensure` (PostconditionFailed); 9 is answered with the wrong label
(succeeds, counted wrong by `--expect label`); the others are answered right.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stratum_core.testing import FakeLLM, Fault, Reply

PLAN = """
version: "1"
contracts:
  Label:
    label: {type: string, enum: [pos, neg]}
    confidence: {type: number}
functions:
  classify:
    mode: infer
    intent: Classify the sentiment of the text.
    input: {text: {type: string}}
    output: Label
    ensure: ["result.confidence > 0.5"]
    retries: 1
flows:
  triage:
    input: {text: {type: string}}
    output: Label
    steps:
      - {id: classify, function: classify, inputs: {text: $.input.text}}
"""

ITEMS = 200
PRICE = (1.0, 2.0)  # $ per million input and output tokens
# A model name of their own: LiteLLM's price map may know `openai/fake-llm` (other tests register it), and a price it
# knows wins over the one these tests give.
MODEL = "openai/batch-triage-model"
_ITEM = re.compile(r"\bitem (\d+)\b")


def gold(index: int) -> str:
    return "pos" if index % 2 == 0 else "neg"


def write_plan(folder: Path) -> Path:
    path = folder / "triage.stratum.yaml"
    path.write_text(PLAN, encoding="utf-8")
    return path


def write_items(folder: Path, count: int = ITEMS) -> Path:
    path = folder / "items.jsonl"
    lines = (json.dumps({"text": f"item {i}", "label": gold(i)}) for i in range(count))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def item_of(body: dict[str, Any]) -> int:
    text = "\n".join(str(m.get("content")) for m in body.get("messages") or [])
    found = _ITEM.search(text)
    assert found is not None, text
    return int(found.group(1))


def script_faults(fake: FakeLLM) -> Counter[int]:
    """Answer every item as the module docstring says; returns the count of requests per item (kept current)."""
    requests: Counter[int] = Counter()
    lock = threading.Lock()

    def answer(body: dict[str, Any]) -> Reply | Fault:
        index = item_of(body)
        with lock:
            requests[index] += 1
            first = requests[index] == 1
        kind = index % 10
        if kind == 3 and first:
            return Fault("rate_limit", retry_after=0)
        if kind == 5:
            return Fault("broken_json")
        label = gold(index) if kind != 9 else ("neg" if gold(index) == "pos" else "pos")
        confidence = 0.1 if kind == 7 else 0.9
        return Reply(json={"label": label, "confidence": confidence}, prompt_tokens=100, completion_tokens=10)

    fake.add_rule(lambda body: True, answer)
    return requests


EXPECTED = {"succeeded": 160, "failed": 40, "failures": {"ParseFailure": 20, "PostconditionFailed": 20}}
EXPECTED_CORRECT = 140  # 160 succeeded, 20 of them with the wrong label; failures count as wrong


def done_items(results: Path) -> dict[int, dict[str, Any]]:
    """The items of a results file, by index (every line must be whole JSON)."""
    lines = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    return {line["index"]: line for line in lines}


Counts = Callable[[], Counter[int]]
