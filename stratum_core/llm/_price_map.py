"""Whether a model has a known price, without importing LiteLLM: its bundled price map, read as JSON.

`stratum validate` uses this to warn about plans that would be refused at run time (an unpriced model under a cost
budget) and must stay fast; the engine itself asks LiteLLM (`LiteLLMClient.quote`).
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["has_known_price"]

_MAP_FILE = "model_prices_and_context_window_backup.json"


@cache
def _price_map() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / _MAP_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def has_known_price(model: str) -> bool | None:
    """True when LiteLLM's bundled map prices `model` (with or without its provider prefix), False when not.

    None when the map cannot be read (then nothing can be said).
    """
    prices = _price_map()
    if not prices:
        return None
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        entry = prices.get(name)
        if isinstance(entry, dict) and (
            isinstance(entry.get("input_cost_per_token"), int | float)
            or isinstance(entry.get("output_cost_per_token"), int | float)
        ):
            return True
    return False
