"""given / ensure / until / feedback: expression strings (sandboxed, exportable) or Python callables (library only).

A string is kept as it is: the engine compiles it with the sandbox, exactly as in a plan, and the decorator's static
check reads it against the contracts. A callable is registered with the engine (`_python_objects`) and the function
names it by a token. It is called with Python values: `ensure`, `until` and `feedback` get the result as their first
argument, and any further parameter, by name, gets the input of that name; `given` gets inputs by name only.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from stratum_core.engine._python_objects import PythonCondition, python_condition, register_condition
from stratum_core.errors import ExpressionError
from stratum_core.expressions import Expression, ExpressionSyntaxError, compile_expression, describe_failure
from stratum_core.library._codec import Codec
from stratum_core.library._types import DefinitionProblem

__all__ = [
    "ConditionArg",
    "Role",
    "callable_text",
    "condition_tokens",
    "is_python_token",
    "sandbox_form",
    "suggestion",
]

ConditionArg = str | Callable[..., Any]
Role = Literal["given", "ensure", "until", "feedback"]

_suggestions: dict[str, str] = {}


def suggestion(token: str) -> str | None:
    """The expression string a registered lambda could be written as, when it is one."""
    return _suggestions.get(token)


def is_python_token(text: str) -> bool:
    """Whether a condition text names a registered Python callable (and so cannot be exported)."""
    return python_condition(text) is not None


def condition_tokens(
    values: ConditionArg | Sequence[ConditionArg] | None,
    *,
    role: Role,
    inputs: Mapping[str, Codec],
    result: Codec | None,
) -> tuple[str, ...]:
    """The condition texts a plan function holds for `values`: strings as given, callables as registered tokens."""
    if values is None:
        return ()
    items: Sequence[ConditionArg] = [values] if isinstance(values, str) or callable(values) else values
    texts: list[str] = []
    for index, item in enumerate(items):
        where = role if len(items) == 1 else f"{role}[{index}]"
        if isinstance(item, str):
            texts.append(item)
        elif callable(item):
            token = register_condition(_python_condition(item, role=role, inputs=inputs, result=result, where=where))
            shadow = sandbox_form(item, role=role)
            if shadow is not None:
                _suggestions[token] = shadow.text
            texts.append(token)
        else:
            raise DefinitionProblem(
                f"{where} must be an expression string or a callable, not {type(item).__name__}", path=where
            )
    return tuple(texts)


@dataclass(frozen=True)
class _Binding:
    result: bool
    inputs: tuple[str, ...]


def _binding(fn: Callable[..., Any], *, role: Role, inputs: Mapping[str, Codec], where: str) -> _Binding:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return _Binding(result=role != "given", inputs=())
    takes_result = role != "given"
    if takes_result:
        if not parameters:
            raise DefinitionProblem(f"{where}: the callable takes no argument; it is given the result", path=where)
        parameters = parameters[1:]
    names: list[str] = []
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name not in inputs:
            if parameter.default is not parameter.empty:
                continue
            known = ", ".join(inputs) or "none"
            raise DefinitionProblem(
                f"{where}: the callable's parameter '{parameter.name}' is not an input (inputs: {known})", path=where
            )
        names.append(parameter.name)
    return _Binding(result=takes_result, inputs=tuple(names))


def _python_condition(
    fn: Callable[..., Any], *, role: Role, inputs: Mapping[str, Codec], result: Codec | None, where: str
) -> PythonCondition:
    binding = _binding(fn, role=role, inputs=inputs, where=where)
    text = callable_text(fn)
    shadow = sandbox_form(fn, role=role)

    def check(env: Mapping[str, Any]) -> Any:
        try:
            kwargs = {name: inputs[name].to_python(env[name]) for name in binding.inputs if name in env}
            if binding.result:
                value = env.get("result")
                return fn(result.to_python(value) if result is not None else value, **kwargs)
            return fn(**kwargs)
        except ExpressionError:
            raise
        except Exception as error:  # the developer's callable failed: a condition that cannot be evaluated
            raise ExpressionError(f"{text} raised {type(error).__name__}: {error}", expression=text) from error

    def explain(env: Mapping[str, Any]) -> str:
        if shadow is not None:
            try:
                if not shadow.evaluate(env):
                    return describe_failure(shadow, env)
            except ExpressionError:
                pass
        shown = ["result"] if binding.result else []
        shown += list(binding.inputs)
        actual = ", ".join(f"{name} = {_short(env.get(name))}" for name in shown if name in env)
        return f"{text} (actual: {actual})" if actual else text

    return PythonCondition(text=text, check=check, explain=explain)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def callable_text(fn: Callable[..., Any]) -> str:
    """How a callable reads in messages: a lambda's source (`lambda r: r.confidence > 0.7`), else its name."""
    lam = _lambda_node(fn)
    if lam is not None:
        return " ".join(lam[1].split())
    return getattr(fn, "__qualname__", None) or repr(fn)


def _lambda_node(fn: Callable[..., Any]) -> tuple[ast.Lambda, str] | None:
    """The AST and source text of a lambda, when its source can be found and it is the only one that fits."""
    code = getattr(fn, "__code__", None)
    if code is None or getattr(fn, "__name__", "") != "<lambda>":
        return None
    try:
        lines, _ = inspect.findsource(fn)
    except (OSError, TypeError):
        return None
    first = code.co_firstlineno - 1
    chunk = "".join(lines[first : first + 20])
    parsed = _parse_prefix(textwrap.dedent(chunk) if chunk[:1].isspace() else chunk)
    if parsed is None:
        return None
    tree, text = parsed
    arguments = code.co_varnames[: code.co_argcount]
    found = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Lambda) and node.lineno == 1 and tuple(a.arg for a in node.args.args) == arguments
    ]
    if len(found) != 1:
        return None
    source = ast.get_source_segment(text, found[0]) or ast.unparse(found[0])
    return found[0], source


def _parse_prefix(text: str) -> tuple[ast.Module, str] | None:
    """Parse the longest prefix of `text` (whole lines, then a wrapped form) that is valid Python."""
    lines = text.splitlines(keepends=True)
    for end in range(len(lines), 0, -1):
        chunk = "".join(lines[:end])
        for candidate in (chunk, f"({chunk.strip().rstrip(',')})", f"f({chunk.strip().rstrip(',')})"):
            try:
                return ast.parse(candidate), candidate
            except SyntaxError:
                continue
        stripped = chunk.strip()
        start = stripped.find("lambda")
        if start > 0:
            candidate = "(" + stripped[start:].rstrip(",)") + ")"
            try:
                return ast.parse(candidate), candidate
            except SyntaxError:
                continue
    return None


def sandbox_form(fn: Callable[..., Any], *, role: Role) -> Expression | None:
    """The lambda as a sandboxed expression, when it is one (`lambda r: r.x > 1` -> `result.x > 1`), else None.

    Used to describe a violation with the values it read, and to suggest the exportable string.
    """
    found = _lambda_node(fn)
    if found is None:
        return None
    node, _ = found
    params = [a.arg for a in node.args.args]
    rename = {params[0]: "result"} if params and role != "given" else {}

    class _Rename(ast.NodeTransformer):
        def visit_Name(self, name: ast.Name) -> ast.Name:
            return ast.Name(id=rename.get(name.id, name.id), ctx=name.ctx)

    body = _Rename().visit(node.body)
    try:
        return compile_expression(ast.unparse(body))
    except ExpressionSyntaxError:
        return None
