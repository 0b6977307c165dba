"""Values cross a durable backend as JSON text, by reference to the run store when they are large.

Two reasons. Temporal refuses a payload over 2 MB and a workflow history over 50 MB, and model transcripts,
documents and their summaries pass those easily: a value whose JSON is larger than the threshold is written to the
run store (content-addressed, so the same value is stored once) and a small reference `{"$stratum_payload": KEY,
"bytes": N}` travels instead, which the receiver reads back from the same store. And the order of an object's keys
is part of what a step shows its model (its prompt lists inputs in order), while Temporal's JSON converter sorts
keys: as text, a value arrives exactly as it left.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from stratum_core.store import RunStore, StoreError

__all__ = ["REFERENCE_KEY", "is_reference", "packed", "unpacked"]

REFERENCE_KEY = "$stratum_payload"
_PREFIX = "payload:"


def packed(store: RunStore, value: Any, *, threshold: int) -> str | dict[str, Any]:
    """`value` as JSON text when that fits in `threshold` bytes, else a reference to it, written to `store`."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    size = len(text.encode())
    if size <= threshold:
        return text
    key = _PREFIX + hashlib.sha256(text.encode()).hexdigest()
    if store.cache_get(key) is None:
        store.cache_put(key, text, contract_hash="payload")
    return {REFERENCE_KEY: key, "bytes": size}


def is_reference(value: Any) -> bool:
    """Whether `value` is a reference made by `packed`."""
    return isinstance(value, dict) and set(value) == {REFERENCE_KEY, "bytes"}


def unpacked(store: RunStore, value: str | dict[str, Any]) -> Any:
    """The value `packed` made `value` of (a reference is read from `store`)."""
    if isinstance(value, str):
        return json.loads(value)
    if not is_reference(value):
        raise StoreError(f"not a packed value: {str(value)[:80]}")
    key = str(value[REFERENCE_KEY])
    found = store.cache_get(key)
    if not isinstance(found, str):
        raise StoreError(f"payload {key} is not in the run store: the server and its workers must share one store")
    return json.loads(found)
