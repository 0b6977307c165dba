"""The Python library: `@contract`, `@infer`, `@compute`, `@flow`, `@refine` and the flow primitives, on the engine.

Import it as `stratum` (the thin public package); this package holds the implementation.
"""

from stratum_core.library._batch import BatchResults, batch
from stratum_core.library._contract import contract, contract_info
from stratum_core.library._export import export_plan
from stratum_core.library._flow import FlowFn, flow
from stratum_core.library._functions import (
    ComputeFn,
    InferFn,
    Learned,
    StratumFunction,
    compute,
    infer,
    learned,
    refine,
)
from stratum_core.library._primitives import await_human, debate, parallel, race
from stratum_core.library._results import HumanDecision, Probabilistic
from stratum_core.library._runtime import configure, engine, run
from stratum_core.library._step_call import StepCall
from stratum_core.library._types import ContractInfo, opaque
from stratum_core.plan import Budget

__all__ = [
    "BatchResults",
    "Budget",
    "ComputeFn",
    "ContractInfo",
    "FlowFn",
    "HumanDecision",
    "InferFn",
    "Learned",
    "Probabilistic",
    "StepCall",
    "StratumFunction",
    "await_human",
    "batch",
    "compute",
    "configure",
    "contract",
    "contract_info",
    "debate",
    "engine",
    "export_plan",
    "flow",
    "infer",
    "learned",
    "opaque",
    "parallel",
    "race",
    "refine",
    "run",
]
