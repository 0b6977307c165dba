"""A run error rebuilt from the JSON it was recorded as, when it crossed a process boundary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stratum_core import errors

__all__ = ["run_error_from_dict"]

_RESTORED: dict[str, type[errors.RunError]] = {}


def _error_classes() -> dict[str, type[errors.RunError]]:
    found: dict[str, type[errors.RunError]] = {"RunError": errors.RunError}
    pending: list[type[errors.RunError]] = [errors.RunError]
    while pending:
        for cls in pending.pop().__subclasses__():
            if cls.__module__ == errors.__name__:
                found.setdefault(cls.__name__, cls)
                pending.append(cls)
    return found


def _restored_class(name: str) -> type[errors.RunError]:
    cls = _RESTORED.get(name)
    if cls is None:
        base = _error_classes().get(name, errors.RunError)

        def details(self: errors.RunError) -> dict[str, Any]:
            return dict(getattr(self, "_recorded_details", {}))

        cls = _RESTORED[name] = type(base.__name__, (base,), {"details": details, "__module__": base.__module__})
    return cls


def run_error_from_dict(data: Mapping[str, Any]) -> errors.RunError:
    """The RunError `data` (a `RunError.to_dict()`) describes: of the same class, with the same `to_dict()`.

    Its structured fields are set as attributes too (`dimension`, `history`, `review_id`, ...), so code that reads
    them, or checks the class, sees what it would have seen in the process that raised it.
    """
    cls = _restored_class(str(data.get("type") or "RunError"))
    error = cls.__new__(cls)
    step = data.get("step_id")
    errors.RunError.__init__(error, str(data.get("message") or ""), step_id=step if isinstance(step, str) else None)
    extra = {key: value for key, value in data.items() if key not in ("type", "message", "step_id")}
    for key, value in extra.items():
        if not isinstance(getattr(cls, key, None), property):  # a derived field (`violations`) follows the others
            setattr(error, key, value)
    error._recorded_details = extra  # type: ignore[attr-defined]
    return error
