"""Type inference over a compiled expression: the type of every node, and every way it could fail on typed data.

Each operator, comparison, function and method has a signature (see `_signatures`); a value that may be None (an
optional input) or absent (an optional field) must be narrowed before it is used. The narrowing forms understood:

- `x.tag is not None and ...`, `x.tag is None or ...`, `... if x.tag is not None else ...`;
- `'tag' in x and ...` (the field is present);
- `len(xs) > 0 and xs[0]` (also `len(xs) >= 1`, `len(xs) != 0`, `len(xs) == 3`, and plain truthiness `xs and ...`);
- the `if` clauses of a comprehension narrow its element.

What cannot be decided here (a division by a data value, an index computed from data, a value of unknown type)
is returned as a run-time check: the engine checks it when it runs, and `stratum validate --strict` lists it.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from stratum_core.expressions._signatures import (
    FUNCTION_SIGNATURES,
    METHOD_SIGNATURES,
    SignatureError,
    element_type,
    method_kind,
)
from stratum_core.expressions._syntax import _Positions, _string_key
from stratum_core.expressions._types import (
    ANY,
    BOOLEAN,
    INTEGER,
    NUMBER,
    NUMERIC,
    STRING,
    Fields,
    Ty,
    array,
    join,
    literal_ty,
    ty_text,
)

if TYPE_CHECKING:
    from stratum_core.expressions._expression import Expression

__all__ = ["Finding", "infer_type"]


@dataclass(frozen=True)
class Finding:
    """What the inference found at character `offset` of the expression: a problem, or a run-time check."""

    offset: int
    message: str
    hint: str | None = None
    runtime: bool = False


@dataclass(frozen=True)
class _Facts:
    """What is known to hold where a node is evaluated: chains known present, and minimal lengths."""

    present: frozenset[str] = frozenset()
    sizes: tuple[tuple[str, int], ...] = ()

    def size(self, key: str) -> int:
        return max((size for name, size in self.sizes if name == key), default=0)

    def __or__(self, other: _Facts) -> _Facts:
        return _Facts(self.present | other.present, self.sizes + other.sizes)

    def without(self, names: frozenset[str]) -> _Facts:
        """Forget what was known about `names` (rebound by a comprehension)."""

        def keep(key: str) -> bool:
            return key.split(".", 1)[0].split("[", 1)[0] not in names

        return _Facts(frozenset(filter(keep, self.present)), tuple(item for item in self.sizes if keep(item[0])))


_NONE = _Facts()


def infer_type(expression: Expression, names: Mapping[str, Ty], fields: Fields) -> tuple[Ty, list[Finding]]:
    """The type of `expression` when its free names have the types `names`, and what was found on the way."""
    inference = _Inference(expression, fields)
    ty = inference.infer(expression._tree.body, dict(names), _NONE)
    unique = list(dict.fromkeys(inference.findings))
    return ty, unique


def _key(node: ast.expr) -> str | None:
    """`x.a['b'].c` -> 'x.a.b.c', `xs[0]` -> 'xs[0]'; None for anything else (it cannot be narrowed)."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append("." + node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript) and (key := _string_key(node)) is not None:
            parts.append("." + key)
            node = node.value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and type(node.slice.value) is int:
            parts.append(f"[{node.slice.value}]")
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id + "".join(reversed(parts))
        else:
            return None


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _len_of(node: ast.expr) -> ast.expr | None:
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "len"
        and len(node.args) == 1
        and not node.keywords
    ):
        return node.args[0]
    return None


_FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE, ast.Eq: ast.Eq, ast.NotEq: ast.NotEq,
}  # fmt: skip
_NEGATED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
}  # fmt: skip


def _facts(node: ast.expr, truthy: bool) -> _Facts:
    """What holds when `node` evaluates truthy (or falsy, when `truthy` is False)."""
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And) == truthy:
            found = _NONE
            for part in node.values:
                found = found | _facts(part, truthy)
            return found
        return _NONE
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _facts(node.operand, not truthy)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        return _compare_facts(node.left, node.ops[0], node.comparators[0], truthy)
    if truthy:
        key = _key(node)
        if key is not None:
            return _Facts(frozenset({key}), ((key, 1),))
        inner = _len_of(node)
        if inner is not None and (key := _key(inner)) is not None:
            return _Facts(frozenset({key}), ((key, 1),))
    return _NONE


def _compare_facts(left: ast.expr, op: ast.cmpop, right: ast.expr, truthy: bool) -> _Facts:
    kind = type(op)
    if kind in (ast.Is, ast.IsNot, ast.Eq, ast.NotEq) and (_is_none(left) or _is_none(right)):
        subject = right if _is_none(left) else left
        key = _key(subject)
        says_present = kind in (ast.IsNot, ast.NotEq)
        if key is not None and says_present == truthy:
            return _Facts(frozenset({key}))
        return _NONE
    if kind in (ast.In, ast.NotIn) and isinstance(left, ast.Constant) and type(left.value) is str:
        key = _key(right)
        if key is not None and (kind is ast.In) == truthy:
            return _Facts(frozenset({f"{key}.{left.value}"}))
        return _NONE
    if _len_of(right) is not None and isinstance(left, ast.Constant):
        left, right, kind = right, left, _FLIPPED.get(kind, kind)
    inner = _len_of(left)
    if inner is None or not isinstance(right, ast.Constant) or type(right.value) is not int:
        return _NONE
    key = _key(inner)
    if key is None or kind not in _NEGATED:
        return _NONE
    if not truthy:
        kind = _NEGATED[kind]
    bound = right.value
    least = {ast.Gt: bound + 1, ast.GtE: bound, ast.Eq: bound, ast.NotEq: 1 if bound == 0 else 0}.get(kind, 0)
    return _Facts(frozenset({key}), ((key, least),)) if least > 0 else _NONE


class _Inference:
    def __init__(self, expression: Expression, fields: Fields) -> None:
        self._expression = expression
        self._fields = fields
        self._positions = _Positions(expression._code, expression._lead)
        self.findings: list[Finding] = []
        self._none_tests: set[int] = set()  # reads compared with `is None`: an absent field reads as None there

    # reporting

    def source(self, node: ast.AST) -> str:
        return ast.get_source_segment(self._expression._code, node) or self._expression.text.strip()

    def problem(self, node: ast.AST, message: str, hint: str | None = None) -> Ty:
        self.findings.append(Finding(self._positions.of(node), message, hint))
        return ANY

    def runtime(self, node: ast.AST, message: str) -> None:
        self.findings.append(Finding(self._positions.of(node), message, runtime=True))

    def unknown(self, node: ast.expr, ty: Ty, use: str) -> None:
        """Data of unknown type used where a type matters: checked when it runs (reported where it is read)."""
        if ty.kind == "any" and _key(node) is not None:
            self.runtime(node, f"{self.source(node)} is of unknown type; {use} is checked when it runs")

    def require_present(self, node: ast.expr, ty: Ty, use: str) -> Ty:
        if ty.optional:
            self.problem(
                node,
                f"{self.source(node)} may be None ({ty_text(ty)}), and {use} needs a value",
                f"check `{self.source(node)} is not None` first",
            )
            return ty.present()
        if ty.kind == "null":
            self.problem(node, f"{self.source(node)} is None, and {use} needs a value")
            return ANY
        return ty

    # nodes

    def infer(self, node: ast.expr, env: dict[str, Ty], facts: _Facts) -> Ty:
        method = getattr(self, "_" + type(node).__name__, None)
        ty: Ty = method(node, env, facts) if method is not None else ANY
        key = _key(node)
        if key is not None:
            if key in facts.present:
                ty = ty.present()
            size = facts.size(key)
            if size and ty.kind in ("array", "set") and (ty.min_items or 0) < size:
                ty = replace(ty, min_items=size)
            elif size and ty.kind == "string" and (ty.min_length or 0) < size:
                ty = replace(ty, min_length=size)
        return ty

    def _Constant(self, node: ast.Constant, env: dict[str, Ty], facts: _Facts) -> Ty:
        return literal_ty(node.value)

    def _Name(self, node: ast.Name, env: dict[str, Ty], facts: _Facts) -> Ty:
        return env.get(node.id, ANY)

    def _field(self, node: ast.expr, owner: ast.expr, name: str, env: dict[str, Ty], facts: _Facts) -> Ty:
        base = self.infer(owner, env, facts)
        if base.kind == "any":
            return ANY
        base = self.require_present(owner, base, f"reading field '{name}'")
        if base.kind == "null":
            return ANY
        if base.kind not in ("object", "contract"):
            return self.problem(
                node, f"{self.source(owner)} is {ty_text(base)}, not a record, so it has no field '{name}'"
            )
        known = self._fields(base)
        if known is None:
            return ANY if base.items is None else base.items
        found = known.get(name)
        if found is None:
            return ANY  # an unknown field: reported by the checker of field reads, with its own hint
        if found.optional and _key(node) not in facts.present and id(node) not in self._none_tests:
            shown = self.source(node)
            self.problem(
                node,
                f"{shown} may be absent (field '{name}' is optional)",
                f"check `{shown} is not None` or `'{name}' in {self.source(owner)}` first, or use "
                f"{self.source(owner)}.get('{name}')",
            )
            return found.present()
        return found

    def _Attribute(self, node: ast.Attribute, env: dict[str, Ty], facts: _Facts) -> Ty:
        return self._field(node, node.value, node.attr, env, facts)

    def _Subscript(self, node: ast.Subscript, env: dict[str, Ty], facts: _Facts) -> Ty:
        key = _string_key(node)
        if key is not None:
            base = self.infer(node.value, env, facts)
            if base.kind in ("object", "contract", "any") or base.optional:
                return self._field(node, node.value, key, env, facts)
        base = self.infer(node.value, env, facts)
        if isinstance(node.slice, ast.Slice):
            for part in (node.slice.lower, node.slice.upper, node.slice.step):
                if part is not None:
                    bound = self.require_present(part, self.infer(part, env, facts), "a slice bound")
                    if bound.kind not in ("integer", "boolean", "any", "null"):
                        self.problem(part, f"slice bounds must be integers, not {ty_text(bound)}")
            if base.kind == "any":
                return ANY
            base = self.require_present(node.value, base, "slicing")
            if base.kind == "tuple":
                return array(join(list(base.elements or ())))
            if base.kind not in ("string", "array"):
                return self.problem(node, f"cannot slice {ty_text(base)} ({self.source(node.value)})")
            return base.bare() if base.kind == "string" else array(base.items or ANY)
        index = self.infer(node.slice, env, facts)
        if base.kind == "any":
            self.unknown(node.value, base, "indexing it")
            return ANY
        base = self.require_present(node.value, base, "indexing")
        if base.kind in ("object", "contract"):
            if index.kind not in ("string", "any"):
                return self.problem(node.slice, f"record keys are text, not {ty_text(index)}")
            self.runtime(node, f"{self.source(node)}: the key is computed from data; a missing key fails when it runs")
            known = self._fields(base)
            if known is None:
                return base.items or ANY
            return join([ty.present() for ty in known.values()]) if known else ANY
        if base.kind not in ("string", "array", "tuple"):
            return self.problem(node, f"cannot index {ty_text(base)} ({self.source(node.value)})")
        if index.kind not in ("integer", "boolean", "any"):
            return self.problem(node.slice, f"indices must be integers, not {ty_text(index)}")
        item = base.bare() if base.kind == "string" else None
        if base.kind == "tuple":
            elements = base.elements or ()
            constant = node.slice.value if isinstance(node.slice, ast.Constant) else None
            if type(constant) is int and -len(elements) <= constant < len(elements):
                return elements[constant]
            if type(constant) is int:
                return self.problem(node, f"index {constant} is out of range for {ty_text(base)}")
            return join(list(elements))
        if item is None:
            item = base.items or ANY
        if not self._index_in_range(node, base):
            shown, owner = self.source(node), self.source(node.value)
            if isinstance(node.slice, ast.Constant) or (
                isinstance(node.slice, ast.UnaryOp) and isinstance(node.slice.operand, ast.Constant)
            ):
                least = self._needed(node.slice)
                unit = "minItems" if base.kind == "array" else "minLength"
                self.problem(
                    node,
                    f"{shown}: {owner} may have fewer than {least} item{'s' if least != 1 else ''} "
                    f"({ty_text(base)} without {unit}: {least})",
                    f"check `len({owner}) > {least - 1}` first, or declare {unit}: {least}",
                )
            else:
                self.runtime(
                    node, f"{shown}: the index is computed from data; an index out of range fails when it runs"
                )
        return Ty("string", min_length=1, max_length=1) if base.kind == "string" else item

    def _needed(self, index: ast.expr) -> int:
        if isinstance(index, ast.Constant) and type(index.value) is int:
            return index.value + 1 if index.value >= 0 else -index.value
        if isinstance(index, ast.UnaryOp) and isinstance(index.operand, ast.Constant):
            value = index.operand.value
            if type(value) is int:
                return value if isinstance(index.op, ast.USub) else value + 1
        return 1 << 62

    def _index_in_range(self, node: ast.Subscript, base: Ty) -> bool:
        least = (base.min_items if base.kind == "array" else base.min_length) or 0
        return least >= self._needed(node.slice)

    def _List(self, node: ast.List, env: dict[str, Ty], facts: _Facts) -> Ty:
        items = [self.infer(item, env, facts) for item in node.elts]
        return array(join(items), min_items=len(items), max_items=len(items))

    def _Tuple(self, node: ast.Tuple, env: dict[str, Ty], facts: _Facts) -> Ty:
        return Ty("tuple", elements=tuple(self.infer(item, env, facts) for item in node.elts))

    def _Set(self, node: ast.Set, env: dict[str, Ty], facts: _Facts) -> Ty:
        return Ty("set", items=join([self.infer(item, env, facts) for item in node.elts]))

    def _Dict(self, node: ast.Dict, env: dict[str, Ty], facts: _Facts) -> Ty:
        fields: list[tuple[str, Ty]] = []
        record = True
        for key, value in zip(node.keys, node.values, strict=True):
            value_ty = self.infer(value, env, facts)
            if isinstance(key, ast.Constant) and type(key.value) is str:
                fields.append((key.value, value_ty))
            else:
                if key is not None:
                    self.infer(key, env, facts)
                record = False
        if record:
            return Ty("object", fields=tuple(dict(fields).items()))
        return Ty("object", items=join([ty for _, ty in fields]) if fields else ANY)

    def _UnaryOp(self, node: ast.UnaryOp, env: dict[str, Ty], facts: _Facts) -> Ty:
        operand = self.infer(node.operand, env, facts)
        if isinstance(node.op, ast.Not):
            return BOOLEAN
        if operand.kind == "any":
            self.unknown(node.operand, operand, "the sign")
            return ANY
        operand = self.require_present(node.operand, operand, "a sign")
        if operand.kind not in NUMERIC:
            return self.problem(
                node, f"bad operand for unary {'-' if isinstance(node.op, ast.USub) else '+'}: {ty_text(operand)}"
            )
        return INTEGER if operand.kind == "boolean" else operand.bare()

    def _BinOp(self, node: ast.BinOp, env: dict[str, Ty], facts: _Facts) -> Ty:
        left = self.infer(node.left, env, facts)
        right = self.infer(node.right, env, facts)
        op = type(node.op)
        symbol = {
            ast.Add: "+",
            ast.Sub: "-",
            ast.Mult: "*",
            ast.Div: "/",
            ast.FloorDiv: "//",
            ast.Mod: "%",
            ast.Pow: "**",
        }[op]
        if op in (ast.Div, ast.FloorDiv, ast.Mod) and right.kind in NUMERIC and right.maximum == right.minimum == 0:
            return self.problem(node.right, f"{self.source(node)}: division by zero")
        if op in (ast.Div, ast.FloorDiv, ast.Mod) and right.kind in (*NUMERIC, "any") and not _nonzero(right):
            self.runtime(
                node.right,
                f"{self.source(node)}: division by {self.source(node.right)}, which may be 0, fails when it runs",
            )
        if left.kind == "any" or right.kind == "any":
            known = right if left.kind == "any" else left
            self.unknown(node.left if left.kind == "any" else node.right, ANY, f"'{symbol}'")
            if known.kind in ("string", "array") and op is ast.Add:
                return known.bare()
            return NUMBER if known.kind in NUMERIC and op is ast.Div else ANY
        left = self.require_present(node.left, left, f"'{symbol}'")
        right = self.require_present(node.right, right, f"'{symbol}'")
        if left.kind == "any" or right.kind == "any":
            return ANY
        numbers = left.kind in NUMERIC and right.kind in NUMERIC
        integers = numbers and left.kind != "number" and right.kind != "number"
        if numbers:
            if op is ast.Div:
                return NUMBER
            if op is ast.Pow:
                exponent_ok = right.minimum is not None and right.minimum >= 0
                return INTEGER if integers and exponent_ok else NUMBER
            return INTEGER if integers else NUMBER
        if op is ast.Add and left.kind == right.kind and left.kind in ("string", "array"):
            return left.bare() if left.kind == "string" else array(join([left.items or ANY, right.items or ANY]))
        if op is ast.Mult:
            for sequence, count in ((left, right), (right, left)):
                if sequence.kind in ("string", "array") and count.kind in ("integer", "boolean"):
                    return sequence.bare() if sequence.kind == "string" else array(sequence.items or ANY)
        if op is ast.Mod and left.kind == "string":
            return self.problem(node, "text formatting with % is not available", "build text with + and str(...)")
        return self.problem(
            node,
            f"unsupported operand types for {symbol}: {ty_text(left)} and {ty_text(right)} ({self.source(node)})",
            "convert with str(...), int(...) or float(...)" if "string" in (left.kind, right.kind) else None,
        )

    def _BoolOp(self, node: ast.BoolOp, env: dict[str, Ty], facts: _Facts) -> Ty:
        conjunction = isinstance(node.op, ast.And)
        types: list[Ty] = []
        known = facts
        for index, part in enumerate(node.values):
            ty = self.infer(part, env, known)
            last = index == len(node.values) - 1
            # a value that decides the result is returned as it is; in `x or y` the y side only runs when x is falsy
            types.append(ty if last or conjunction else ty.present())
            known = known | _facts(part, conjunction)
        if all(ty.kind == "boolean" for ty in types):
            return BOOLEAN
        return join(types)

    def _Compare(self, node: ast.Compare, env: dict[str, Ty], facts: _Facts) -> Ty:
        operands = [node.left, *node.comparators]
        for index, op in enumerate(node.ops):
            if isinstance(op, ast.Is | ast.IsNot):
                for side in (operands[index], operands[index + 1]):
                    if isinstance(side, ast.Attribute | ast.Subscript):
                        self._none_tests.add(id(side))
        types = [self.infer(operand, env, facts) for operand in operands]
        for index, op in enumerate(node.ops):
            left, right = types[index], types[index + 1]
            left_node, right_node = operands[index], operands[index + 1]
            if isinstance(op, ast.Is | ast.IsNot | ast.Eq | ast.NotEq):
                continue
            if isinstance(op, ast.In | ast.NotIn):
                if right.kind == "any":
                    self.unknown(right_node, right, "'in'")
                    continue
                right = self.require_present(right_node, right, "'in'")
                if right.kind in ("string", "object", "contract"):
                    if left.kind not in ("string", "any"):
                        self.problem(left_node, f"'in' on {ty_text(right)} takes text on the left, not {ty_text(left)}")
                elif right.kind not in ("array", "set", "tuple"):
                    self.problem(right_node, f"cannot look for a value in {ty_text(right)} ({self.source(right_node)})")
                continue
            if left.kind == "any" or right.kind == "any":
                self.unknown(left_node if left.kind == "any" else right_node, ANY, "the comparison")
                continue
            left = self.require_present(left_node, left, "an ordering comparison")
            right = self.require_present(right_node, right, "an ordering comparison")
            if left.kind == "any" or right.kind == "any":
                continue
            comparable = (left.kind in NUMERIC and right.kind in NUMERIC) or (
                left.kind == right.kind and left.kind in ("string", "array", "tuple")
            )
            if not comparable:
                self.problem(
                    node,
                    f"cannot compare {ty_text(left)} with {ty_text(right)} ({self.source(node)})",
                    "convert with str(...), int(...) or float(...)" if "string" in (left.kind, right.kind) else None,
                )
        return BOOLEAN

    def _IfExp(self, node: ast.IfExp, env: dict[str, Ty], facts: _Facts) -> Ty:
        self.infer(node.test, env, facts)
        body = self.infer(node.body, env, facts | _facts(node.test, True))
        orelse = self.infer(node.orelse, env, facts | _facts(node.test, False))
        return join([body, orelse])

    def _Call(self, node: ast.Call, env: dict[str, Ty], facts: _Facts) -> Ty:
        args = [self._argument(arg, env, facts) for arg in node.args]
        keywords = {str(kw.arg): self.infer(kw.value, env, facts) for kw in node.keywords}
        if isinstance(node.func, ast.Name):
            signature = FUNCTION_SIGNATURES.get(node.func.id)
            if signature is None:
                return ANY
            return self._apply(node, node.func.id, lambda: signature.result(args, keywords), args)
        if not isinstance(node.func, ast.Attribute):
            return ANY
        receiver = self.infer(node.func.value, env, facts)
        name = node.func.attr
        if receiver.kind == "any":
            self.unknown(node.func.value, receiver, f"calling .{name}()")
            return ANY
        receiver = self.require_present(node.func.value, receiver, f"calling .{name}()")
        if receiver.kind == "any":
            return ANY
        table = method_kind(receiver)
        if table == "dict":
            return self._dict_method(node, receiver, name, args)
        methods = METHOD_SIGNATURES.get(table or "", {})
        if name not in methods:
            available = ", ".join(sorted(methods)) or "none"
            return self.problem(
                node.func,
                f"{self.source(node.func.value)} is {ty_text(receiver)}, which has no method '{name}'",
                f"methods of {ty_text(receiver.bare())}: {available}",
            )
        return self._apply(node, name, lambda: methods[name](receiver, args), args)

    def _argument(self, arg: ast.expr, env: dict[str, Ty], facts: _Facts) -> Ty:
        if isinstance(arg, ast.GeneratorExp):
            return array(self._comprehension_element(arg, env, facts))
        return self.infer(arg, env, facts)

    def _apply(self, node: ast.Call, name: str, typed: object, args: list[Ty]) -> Ty:
        if name in ("int", "float") and args and args[0].kind == "string" and not _numeric_texts(args[0].enum):
            self.runtime(node, f"{self.source(node)}: text that is not a number fails when it runs")
        if name == "index" and isinstance(node.func, ast.Attribute):
            self.runtime(node, f"{self.source(node)}: a value not in the list fails when it runs")
        for index, arg in enumerate(args):
            if arg.optional:
                self.require_present(node.args[index], arg, f"{name}()")
            elif arg.kind == "any":
                self.unknown(node.args[index], arg, f"passing it to {name}()")
        try:
            return typed()  # type: ignore[operator, no-any-return]
        except SignatureError as error:
            where: ast.AST = node.args[error.index] if 0 <= error.index < len(node.args) else node
            return self.problem(where, error.message, error.hint)

    def _dict_method(self, node: ast.Call, receiver: Ty, name: str, args: list[Ty]) -> Ty:
        known = self._fields(receiver)
        values = list(known.values()) if known is not None else None
        value = join([ty.present() for ty in values]) if values else (receiver.items or ANY)
        if name == "keys":
            return array(STRING)
        if name == "values":
            return array(value)
        if name == "items":
            return array(Ty("tuple", elements=(STRING, value)))
        if name == "get":
            from stratum_core.expressions._signatures import _get

            key = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            try:
                return _get(receiver, args, dict(known) if known is not None else None, key)
            except SignatureError as error:
                return self.problem(node, error.message, error.hint)
        return self.problem(
            node.func,
            f"{self.source(node.func)}: {ty_text(receiver)} has no method '{name}'",
            "methods of records: get, keys, values, items",
        )

    # comprehensions

    def _bind(self, target: ast.expr, ty: Ty, env: dict[str, Ty]) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = ty
            return
        names = target.elts if isinstance(target, ast.Tuple | ast.List) else []
        elements = ty.elements if ty.kind == "tuple" and ty.elements and len(ty.elements) == len(names) else None
        if elements is None and ty.kind not in ("any", "tuple", "array"):
            self.problem(target, f"cannot unpack {ty_text(ty)} into {len(names)} names")
        for index, name in enumerate(names):
            self._bind(name, elements[index] if elements is not None else ANY, env)

    def _scope(
        self, generators: list[ast.comprehension], env: dict[str, Ty], facts: _Facts
    ) -> tuple[dict[str, Ty], _Facts]:
        inner = dict(env)
        for generator in generators:
            source = self.infer(generator.iter, inner, facts)
            if source.kind == "any":
                self.unknown(generator.iter, source, "iterating over it")
                item: Ty | None = ANY
            else:
                source = self.require_present(generator.iter, source, "iteration")
                item = element_type(source)
                if item is None:
                    self.problem(
                        generator.iter, f"cannot iterate over {ty_text(source)} ({self.source(generator.iter)})"
                    )
                    item = ANY
            bound = _bound_names(generator.target)
            facts = facts.without(bound)
            self._bind(generator.target, item or ANY, inner)
            for test in generator.ifs:
                self.infer(test, inner, facts)
                facts = facts | _facts(test, True)
        return inner, facts

    def _comprehension_element(
        self, node: ast.GeneratorExp | ast.ListComp | ast.SetComp, env: dict[str, Ty], facts: _Facts
    ) -> Ty:
        inner, known = self._scope(node.generators, env, facts)
        return self.infer(node.elt, inner, known)

    def _ListComp(self, node: ast.ListComp, env: dict[str, Ty], facts: _Facts) -> Ty:
        return array(self._comprehension_element(node, env, facts))

    def _SetComp(self, node: ast.SetComp, env: dict[str, Ty], facts: _Facts) -> Ty:
        return Ty("set", items=self._comprehension_element(node, env, facts))

    def _DictComp(self, node: ast.DictComp, env: dict[str, Ty], facts: _Facts) -> Ty:
        inner, known = self._scope(node.generators, env, facts)
        self.infer(node.key, inner, known)
        return Ty("object", items=self.infer(node.value, inner, known))

    def _GeneratorExp(self, node: ast.GeneratorExp, env: dict[str, Ty], facts: _Facts) -> Ty:
        return array(self._comprehension_element(node, env, facts))


def _numeric_texts(values: tuple[object, ...] | None) -> bool:
    """Whether every value of a text enum converts to a number."""
    if not values:
        return False
    try:
        for value in values:
            float(str(value))
    except ValueError:
        return False
    return True


def _bound_names(target: ast.expr) -> frozenset[str]:
    return frozenset(node.id for node in ast.walk(target) if isinstance(node, ast.Name))


def _nonzero(ty: Ty) -> bool:
    """Whether a number of type `ty` can never be 0 (its range excludes it, or it is a nonzero constant)."""
    if ty.minimum is not None and ty.minimum > 0:
        return True
    if ty.maximum is not None and ty.maximum < 0:
        return True
    if ty.exclusive_minimum is not None and ty.exclusive_minimum >= 0:
        return True
    return ty.exclusive_maximum is not None and ty.exclusive_maximum <= 0
