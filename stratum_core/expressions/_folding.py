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


def _free_names(node: ast.AST, memo: dict[int, frozenset[str]]) -> frozenset[str]:
    """The names `node` reads and does not bind itself (in a comprehension inside it), computed once per node."""
    found = memo.get(id(node))
    if found is not None:
        return found
    if isinstance(node, ast.Name):
        found = frozenset({node.id}) if isinstance(node.ctx, ast.Load) else frozenset()
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):  # a function's name is not data
        found = frozenset().union(*(_free_names(child, memo) for child in [*node.args, *node.keywords]))
    else:
        found = frozenset().union(*(_free_names(child, memo) for child in ast.iter_child_nodes(node)))
        if isinstance(node, _COMPREHENSIONS):
            bound = {
                item.id
                for generator in node.generators
                for item in ast.walk(generator.target)
                if isinstance(item, ast.Name)
            }
            found = found - bound
    memo[id(node)] = found
    return found


def fold_constants(expression: Expression, *, limits: Limits = DEFAULT_LIMITS) -> list[Finding]:
    """Evaluate each largest sub-expression that reads no data; a failure is a problem at its position."""
    positions = _Positions(expression._code, expression._lead)
    memo: dict[int, frozenset[str]] = {}
    if _free_names(expression._tree.body, memo) and not any(
        isinstance(node, ast.BinOp | ast.Call | ast.Subscript | ast.Compare | ast.comprehension)
        and not _free_names(node, memo)
        for node in ast.walk(expression._tree.body)
    ):
        return []  # every part that reads no data is a plain literal or name: nothing to evaluate
    findings: list[Finding] = []
    stack: list[ast.AST] = [expression._tree.body]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Constant | ast.Name | ast.comprehension | ast.keyword) or not isinstance(
            node, ast.expr
        ):
            stack.extend(_children(node))
            continue
        if isinstance(node, ast.GeneratorExp | ast.Slice) or _free_names(node, memo):
            stack.extend(_children(node))
            continue
        failure = _failure(expression, node, limits, memo)
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


def _failure(
    expression: Expression, node: ast.expr, limits: Limits, memo: dict[int, frozenset[str]]
) -> tuple[ast.expr, str] | None:
    """The innermost part of constant `node` whose evaluation fails, with the message; None if it evaluates."""
    try:
        _Evaluator(expression, {}, limits).run(node)
    except ExpressionError as error:
        if error.message.startswith("unknown name"):
            return None  # a comprehension's name used outside it: not a constant after all
        for child in _children(node):
            if isinstance(child, ast.expr) and not isinstance(child, ast.Constant | ast.Name | ast.GeneratorExp):
                if not _free_names(child, memo) and (inner := _failure(expression, child, limits, memo)) is not None:
                    return inner
        return node, error.message
    return None
