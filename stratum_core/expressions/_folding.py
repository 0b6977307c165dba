"""Constant folding at check time: each sub-expression that reads no data is evaluated once, when it is checked.

It runs under the sandbox's own bounds, so what the sandbox would refuse at run time is refused at check time.

`9**9**9 > 0`, `'a' * 10**10`, `sum(range(10**12))`, `1 / 0` read nothing from the data, so they fail the same way
on every run: the checker refuses them instead, at the position of the failing part.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from stratum_core.errors import ExpressionError
from stratum_core.expressions._evaluation import _Evaluator, _segment
from stratum_core.expressions._inference import Finding
from stratum_core.expressions._syntax import DEFAULT_LIMITS, Limits, _Positions

if TYPE_CHECKING:
    from stratum_core.expressions._expression import Expression

__all__ = ["fold_constants"]

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _children(node: ast.AST) -> list[ast.AST]:
    """The parts of `node` that are values (a method call's receiver, not the bound method itself)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return [node.func.value, *node.args, *node.keywords]
    return list(ast.iter_child_nodes(node))


def _reads_data(node: ast.AST) -> bool:
    """Whether `node` reads a name it does not bind itself (in a comprehension inside it)."""
    called = {id(item.func) for item in ast.walk(node) if isinstance(item, ast.Call)}
    used = {
        item.id
        for item in ast.walk(node)
        if isinstance(item, ast.Name) and isinstance(item.ctx, ast.Load) and id(item) not in called
    }
    bound = {
        item.id
        for comprehension in ast.walk(node)
        if isinstance(comprehension, _COMPREHENSIONS)
        for generator in comprehension.generators
        for item in ast.walk(generator.target)
        if isinstance(item, ast.Name)
    }
    return bool(used - bound)


def fold_constants(expression: Expression, *, limits: Limits = DEFAULT_LIMITS) -> list[Finding]:
    """Evaluate each largest sub-expression that reads no data; a failure is a problem at its position."""
    positions = _Positions(expression._code, expression._lead)
    findings: list[Finding] = []
    stack: list[ast.AST] = [expression._tree.body]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Constant | ast.Name | ast.comprehension | ast.keyword) or not isinstance(
            node, ast.expr
        ):
            stack.extend(_children(node))
            continue
        if isinstance(node, ast.GeneratorExp | ast.Slice) or _reads_data(node):
            stack.extend(_children(node))
            continue
        failure = _failure(expression, node, limits)
        if failure is not None:
            where, message = failure
            findings.append(
                Finding(
                    positions.of(where),
                    f"{_segment(expression, where)} fails whenever it runs: {message}",
                    "it reads no data, so it was evaluated when the plan was checked",
                )
            )
    return findings


def _failure(expression: Expression, node: ast.expr, limits: Limits) -> tuple[ast.expr, str] | None:
    """The innermost part of constant `node` whose evaluation fails, with the message; None if it evaluates."""
    try:
        _Evaluator(expression, {}, limits).run(node)
    except ExpressionError as error:
        if error.message.startswith("unknown name"):
            return None  # a comprehension's name used outside it: not a constant after all
        for child in _children(node):
            if isinstance(child, ast.expr) and not isinstance(child, ast.Constant | ast.Name | ast.GeneratorExp):
                if not _reads_data(child) and (inner := _failure(expression, child, limits)) is not None:
                    return inner
        return node, error.message
    return None
