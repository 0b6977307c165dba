"""The library's public surface and its imports: no MCP, and LiteLLM only once a model is called."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import stratum
import stratum_core
import stratum_core.library
from examples import digest
from stratum_core.errors import PlanError
from stratum_core.plan import load_plan_text

REPO = Path(__file__).resolve().parents[3]

SCRIPT = """
import sys
import stratum
import examples.support_ticket as ticket
from stratum_core.testing import FakeLLM

text = stratum.export_plan(ticket)
stratum.configure()
print("after import, decoration, export, configure:", "litellm" in sys.modules, "mcp" in sys.modules)
with FakeLLM() as fake:
    fake.add_rule("emotional tone", {"label": "neutral", "confidence": 0.9, "reasoning": "fine"})
    stratum.configure(model=fake.model, api_base=fake.url, api_key="test")
    result = stratum.run(ticket.classify, "Where is my invoice?")
print("after the first call:", "litellm" in sys.modules, "mcp" in sys.modules, result.label)
"""


def test_importing_the_library_loads_no_mcp_and_no_litellm_until_the_first_call() -> None:
    env = {
        **os.environ,
        "LITELLM_OFFLINE_MODE": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
    }
    env.pop("STRATUM_MODEL", None)
    env.pop("STRATUM_STORE", None)
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "after import, decoration, export, configure: False False",
        "after the first call: True False neutral",
    ]


def test_the_public_api_is_pinned() -> None:
    assert stratum_core.library.__all__ == [
        "BatchResults", "Budget", "ComputeFn", "ContractInfo", "FlowFn", "HumanDecision", "InferFn", "Learned",
        "Probabilistic", "StepCall", "StratumFunction", "await_human", "batch", "compute", "configure", "contract",
        "contract_info", "debate", "engine", "export_plan", "flow", "infer", "learned", "opaque", "parallel", "race",
        "refine", "run",
    ]  # fmt: skip
    assert set(stratum_core.library.__all__) <= set(stratum.__all__)
    errors = {
        "BudgetExceeded",
        "ComputeError",
        "ConfigurationError",
        "ConsensusFailure",
        "ConvergenceFailure",
        "ExpressionError",
        "HITLTimeoutError",
        "HumanRejected",
        "InvalidInput",
        "LLMError",
        "ParallelValidationFailed",
        "ParseFailure",
        "PlanError",
        "PostconditionFailed",
        "PreconditionFailed",
        "RunError",
        "StabilityAssertionError",
        "StratumError",
    }
    reference_names = {"StratumCompileError", "StratumWarning"}  # the reference library's, in stratum.exceptions
    engine_types = {"ReviewAnswer", "ReviewRequest", "ReviewSink", "RunObserver", "RunResult"}
    assert set(stratum.__all__) == set(stratum_core.library.__all__) | errors | engine_types | reference_names
    assert stratum.__all__ == sorted(stratum.__all__)
    for name in stratum.__all__:
        assert getattr(stratum, name) is not None
    assert stratum.PostconditionFailed is stratum_core.errors.PostconditionFailed


async def test_a_store_path_gives_traces_any_stratum_process_can_read(tmp_path: Path) -> None:
    from examples.support_ticket import lookup_customer
    from stratum_core.store import SQLiteRunStore

    path = tmp_path / "shared" / "stratum.db"
    stratum.configure(store=path)
    customer = await lookup_customer("grace@example.com")
    assert customer.name == "Grace Hopper"
    with SQLiteRunStore(path) as reader:  # what `stratum runs` and the server read
        [run] = reader.list_runs().runs
        trace = reader.get_trace(run.run_id)
    assert trace is not None and trace.run.flow == "lookup_customer" and trace.steps[0].kind == "compute"
    stratum.configure()


PLAN = """
version: "1"
functions:
  f:
    mode: compute
    input: {x: {type: string}}
    output: {type: string}
"""


@pytest.mark.parametrize("line", ["call: 'python:f1: x'", "expr: x\n    ensure: [TOKEN]"])
def test_a_plan_file_cannot_name_a_registered_python_callable(line: str) -> None:
    token = digest.summarize.definition.ensure[0]  # what the in-memory plan holds for a lambda
    assert token.startswith("python:")
    with pytest.raises(PlanError):
        load_plan_text(PLAN + "    " + line.replace("TOKEN", repr(token)) + "\n")
