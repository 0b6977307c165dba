"""The sandbox for plan expressions: `given`, `ensure`, `until`, `feedback`, `when`, `dispatch`, `validate`, `expr`.

Plan expressions are untrusted text in Python expression syntax. They are parsed with `ast`, checked against an
allow-list of node types, functions and methods, and run by a tree-walking interpreter: nothing reaches eval, exec or
compile. Each evaluation is bounded in steps, wall time, nesting, and the size of the strings, collections and
integers it builds.

One concept per module: `_syntax` (the allow-list and parsing), `_builtins` (the functions and methods, with their
signatures), `_values` (the values expressions read and build), `_evaluation` (evaluation with bounds), `_expression`
(a compiled expression and how a false condition is explained).
"""

from stratum_core.expressions._expression import Expression, compile_expression, describe_failure
from stratum_core.expressions._syntax import DEFAULT_LIMITS, ExpressionSyntaxError, FieldRead, Limits

__all__ = [
    "DEFAULT_LIMITS",
    "Expression",
    "ExpressionSyntaxError",
    "FieldRead",
    "Limits",
    "compile_expression",
    "describe_failure",
]
