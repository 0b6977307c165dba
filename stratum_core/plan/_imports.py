"""Check a compute function's `call:` target without calling it: the module imports, the name is a public callable.

The module is looked up beside the plan file first, then on sys.path (the engine resolves it the same way).
Importing runs the module's top-level code, which the plan's owner wrote; nothing else of it runs here.
"""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path

from stratum_core.plan._plan_schema import did_you_mean

__all__ = ["call_target_problem"]

_lock = threading.Lock()


def call_target_problem(target: str, *, base_dir: Path | None) -> tuple[str, str | None] | None:
    """Why `package.module:function` cannot be called (message, hint), or None when it can."""
    module_name, _, attribute = target.partition(":")
    with _lock:
        saved = list(sys.path)
        if base_dir is not None:
            sys.path.insert(0, str(base_dir))
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            missing = error.name or module_name
            return (
                f"cannot import '{module_name}': no module named '{missing}'",
                "modules are looked up beside the plan file, then on sys.path",
            )
        except (Exception, SystemExit) as error:  # the plan owner's module failed at import: isolate it
            return f"importing '{module_name}' failed: {type(error).__name__}: {error}", None
        finally:
            sys.path[:] = saved
    value: object = module
    walked = module_name
    for part in attribute.split("."):
        if part.startswith("_"):
            return f"'{target}' names a private attribute", "call targets must be public names"
        if not hasattr(value, part):
            public = [name for name in dir(value) if not name.startswith("_")]
            return f"'{walked}' has no attribute '{part}'", did_you_mean(part, public)
        value = getattr(value, part)
        walked = f"{walked}:{part}" if walked == module_name else f"{walked}.{part}"
    if not callable(value):
        return f"'{target}' is not callable", None
    return None
