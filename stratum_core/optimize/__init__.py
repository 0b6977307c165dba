"""`stratum optimize`: learn an infer function's context from labelled examples with DSPy (the `optimize` extra).

Nothing here imports DSPy until `optimize_function` runs; what it learns is written as a learned-context file that
the runtime reads without DSPy (see `stratum_core.plan._learned`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["OPTIMIZERS", "optimize_function"]

OPTIMIZERS = ("bootstrap", "gepa", "mipro")

if TYPE_CHECKING:
    from stratum_core.optimize._optimizer import optimize_function
else:

    def optimize_function(*args: Any, **kwargs: Any) -> Any:
        """Optimize one infer function (see `stratum_core.optimize._optimizer.optimize_function`)."""
        from stratum_core.optimize._optimizer import optimize_function as run

        return run(*args, **kwargs)
