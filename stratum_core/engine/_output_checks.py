"""Checks of an output besides its contract and `ensure`: a step's `output_schema`, `guardrails`, and file checks.

These come from reference plans (see `stratum_core.plan._reference`); a plan of ours may use the first two as well.
Order, as in the reference: output_schema, guardrails, then the ensure conditions (file checks last).

File checks (`file_exists(path)`, `file_contains(path, text)`, `no_file_conflicts(tasks)`) read the project folder
only: a path is resolved (symlinks included) and must stay inside it; nothing is written, and at most 10 MB of a
file is read. Each call's arguments are sandboxed expressions; the call's answer replaces it, and the rest of the
condition is evaluated by the same sandbox as every other expression (never `eval`).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stratum_core.engine._guardrails import guardrail_violations
from stratum_core.engine._validation import schema_violations
from stratum_core.errors import ExpressionError
from stratum_core.expressions import compile_expression

__all__ = ["FILE_READ_LIMIT", "FileCheckError", "file_condition_problem", "file_violations", "output_violations"]

FILE_READ_LIMIT = 10 * 1024 * 1024
_MAX_TASKS = 1000


class FileCheckError(Exception):
    """A file check that cannot be answered (a path outside the project, a bad argument)."""


def output_violations(fn: Any, value: Any, inputs: Mapping[str, Any], project_dir: str | None) -> list[str]:
    """Violations of `fn`'s output_schema and guardrails, then of its file conditions, on `value`."""
    output_schema = getattr(fn, "output_schema", None)
    if output_schema:
        found = schema_violations(value, output_schema, root="result")
        if found:
            return [f"output_schema violation: {violation}" for violation in found]
    guardrails = getattr(fn, "guardrails", ())
    found = guardrail_violations(tuple(guardrails), value)
    if found:
        return found
    file_ensure: Sequence[str] = getattr(fn, "file_ensure", ())
    if file_ensure:
        return file_violations(file_ensure, {**inputs, "result": value}, project_dir)
    return []


def _root(project_dir: str | None) -> Path:
    return Path(project_dir or os.getcwd()).resolve()


def _inside(root: Path, relative: Any) -> Path:
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise FileCheckError(f"a file path must be a non-empty string, got {relative!r}")
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise FileCheckError(f"{relative!r} is outside the project folder")
    return path


def _file_exists(root: Path, args: list[Any]) -> bool:
    if len(args) != 1:
        raise FileCheckError("file_exists takes one path")
    return _inside(root, args[0]).exists()


def _file_contains(root: Path, args: list[Any]) -> bool:
    if len(args) != 2 or not isinstance(args[1], str):
        raise FileCheckError("file_contains takes a path and a string")
    path = _inside(root, args[0])
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        data = handle.read(FILE_READ_LIMIT)
    return args[1] in data.decode("utf-8", errors="replace")


def _no_file_conflicts(_: Path, args: list[Any]) -> bool:
    """False when two tasks that do not depend on each other (transitively) own the same file."""
    if len(args) != 1 or not isinstance(args[0], list):
        raise FileCheckError("no_file_conflicts takes a list of tasks")
    tasks = [task for task in args[0][:_MAX_TASKS] if isinstance(task, Mapping)]
    ids = [str(task.get("id")) for task in tasks]
    direct = {str(task.get("id")): {str(d) for d in task.get("depends_on") or []} for task in tasks}
    reach: dict[str, set[str]] = {}
    for task_id in ids:
        seen: set[str] = set()
        stack = list(direct.get(task_id, ()))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(direct.get(current, ()))
        reach[task_id] = seen
    owned = [(str(task.get("id")), {str(f) for f in task.get("files_owned") or []}) for task in tasks]
    for i, (first, first_files) in enumerate(owned):
        for second, second_files in owned[i + 1 :]:
            related = first in reach.get(second, set()) or second in reach.get(first, set())
            if not related and first_files & second_files:
                return False
    return True


_FILE_FUNCTIONS = {
    "file_exists": _file_exists,
    "file_contains": _file_contains,
    "no_file_conflicts": _no_file_conflicts,
}


def _is_file_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FILE_FUNCTIONS


def file_condition_problem(text: str) -> str | None:
    """Why a condition with file checks cannot run (syntax, a sandbox rule, misuse), or None."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        return f"invalid syntax: {error.msg}"
    for node in ast.walk(tree):
        if _is_file_call(node):
            assert isinstance(node, ast.Call)
            if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
                return "file checks take positional arguments only"
            for arg in node.args:
                if any(_is_file_call(inner) for inner in ast.walk(arg)):
                    return "a file check cannot be an argument of another"
                try:
                    compile_expression(ast.unparse(arg))
                except (ExpressionError, ValueError) as error:
                    return str(error)
    try:
        compile_expression(ast.unparse(_Replace(lambda _: True).visit(tree)))
    except (ExpressionError, ValueError) as error:
        return str(error)
    return None


class _Replace(ast.NodeTransformer):
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if _is_file_call(node):
            return ast.copy_location(ast.Constant(self.answer(node)), node)
        return self.generic_visit(node)


def file_violations(conditions: Sequence[str], env: Mapping[str, Any], project_dir: str | None) -> list[str]:
    """The file conditions that are false (or cannot be answered) on `env`, said like ensure violations."""
    root = _root(project_dir)
    violations: list[str] = []
    for text in conditions:

        def answer(node: ast.Call) -> Any:
            assert isinstance(node.func, ast.Name)
            args = [compile_expression(ast.unparse(arg)).evaluate(env) for arg in node.args]
            return _FILE_FUNCTIONS[node.func.id](root, args)

        try:
            rewritten = ast.unparse(_Replace(answer).visit(ast.parse(text, mode="eval")))
            ok = bool(compile_expression(rewritten).evaluate(env))
        except (ExpressionError, FileCheckError, SyntaxError, ValueError, OSError) as error:
            violations.append(f"ensure: {text} could not be evaluated: {error}")
            continue
        if not ok:
            violations.append(f"ensure: {text} is false")
    return violations
