"""The reference's controller tools (`stratum serve --reference-tools`): a thin adapter over stratum_core.

Skills and agents written for the reference Stratum server drive flows with `stratum_plan`, then
`stratum_step_done` per step, `stratum_gate_resolve`, `stratum_audit`, ... This package serves those tools, with
the reference's argument names and reply shapes, on our engine and store: every flow they start is an ordinary run
(`stratum://runs/{flow_id}`), with contracts, `ensure`, guardrails, budgets and bounded routing enforced.
"""

from server._reference_tools._definitions import REFERENCE_ONLY, REFERENCE_TOOL_DEFS
from server._reference_tools._tools import ReferenceTools

__all__ = ["REFERENCE_ONLY", "REFERENCE_TOOL_DEFS", "ReferenceTools"]
