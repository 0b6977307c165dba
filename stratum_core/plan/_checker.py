from __future__ import annotations
from typing import Any
def check_plan(loaded: Any, *, check_imports: bool = True) -> list[Any]:
    return []
