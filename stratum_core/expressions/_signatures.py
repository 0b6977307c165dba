"""The type signatures of the built-in functions and methods: what each accepts and what it returns.

The implementations are in `_builtins`; these say, for the type checker, which argument types each takes and the
type of its result, so that `len(5)`, `text.index('a')` (lists have `index`, strings do not) or `sum(names)` are
refused when the plan is checked rather than when it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stratum_core.expressions._types import ANY, BOOLEAN, INTEGER, NUMBER, NUMERIC, STRING, Ty, array, join, ty_text

__all__ = ["FUNCTION_SIGNATURES", "METHOD_SIGNATURES", "Signature", "element_type", "method_kind"]


class SignatureError(Exception):
    """An argument of the wrong type: `index` is the argument, `message` says what was expected."""

    def __init__(self, index: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Signature:
    """How a built-in types its call: `result(arguments, keywords)` returns the result or raises SignatureError."""

    result: Callable[[Sequence[Ty], dict[str, Ty]], Ty]
    summary: str


def element_type(ty: Ty) -> Ty | None:
    """The type of the items iterating over `ty` yields, or None when it cannot be iterated."""
    if ty.kind == "any":
        return ANY
    if ty.kind in ("array", "set"):
        return ty.items or ANY
    if ty.kind == "string":
        return Ty("string", min_length=1, max_length=1)
    if ty.kind in ("object", "contract"):
        return STRING
    if ty.kind == "tuple":
        return join(list(ty.elements or ())) if ty.elements else ANY
    return None


def _iterable(ty: Ty, index: int, name: str) -> Ty:
    item = element_type(ty)
    if item is None:
        raise SignatureError(index, f"{name}() takes a list or other collection, not {ty_text(ty)}")
    return item


def _numeric(ty: Ty, index: int, name: str, what: str = "a number") -> None:
    if ty.kind not in NUMERIC and ty.kind != "any":
        raise SignatureError(index, f"{name}() takes {what}, not {ty_text(ty)}")


def _len(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
    if args[0].kind not in ("string", "array", "object", "contract", "set", "tuple", "any"):
        raise SignatureError(0, f"len() takes text, a list or a record, not {ty_text(args[0])}")
    return Ty("integer", minimum=0)


def _abs(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
    _numeric(args[0], 0, "abs")
    return INTEGER if args[0].kind in ("integer", "boolean") else args[0].bare()


def _round(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
    _numeric(args[0], 0, "round")
    digits = args[1] if len(args) > 1 else keywords.get("ndigits")
    if digits is not None and digits.kind not in ("integer", "boolean", "any", "null"):
        raise SignatureError(1, f"round() digits must be an integer, not {ty_text(digits)}")
    kind = "integer" if digits is None or digits.kind == "null" else "number"
    low, high = args[0].minimum, args[0].maximum
    whole = all(bound is None or float(bound).is_integer() for bound in (low, high))
    return Ty(kind, minimum=low, maximum=high) if whole else Ty(kind)  # rounding stays within whole bounds


def _convert(kind: str) -> Callable[[Sequence[Ty], dict[str, Ty]], Ty]:
    def result(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
        if args and args[0].kind not in (*NUMERIC, "string", "any"):
            raise SignatureError(
                0, f"{kind[:3] if kind == 'integer' else 'float'}() takes a number or text, not {ty_text(args[0])}"
            )
        return INTEGER if kind == "integer" else NUMBER

    return result


def _extreme(name: str) -> Callable[[Sequence[Ty], dict[str, Ty]], Ty]:
    def result(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
        if len(args) == 1:
            source = args[0]
            item = _iterable(source, 0, name)
            empty = not (source.kind in ("array", "set") and (source.min_items or 0) >= 1)
            empty = empty and not (source.kind == "string" and (source.min_length or 0) >= 1)
            if "default" in keywords:
                return join([item, keywords["default"]])
            if empty and source.kind != "any":
                raise SignatureError(
                    0,
                    f"{name}() of {ty_text(source)} that may be empty",
                    "pass default=..., or check len(...) > 0 first, or declare minItems: 1",
                )
            return item.bare() if item.kind != "any" else item
        return join([arg.bare() for arg in args])

    return result


def _sum(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
    item = _iterable(args[0], 0, "sum")
    start = args[1] if len(args) > 1 else keywords.get("start", INTEGER)
    if item.kind not in (*NUMERIC, "any"):
        raise SignatureError(
            0,
            f"sum() adds numbers, not {ty_text(item)}s" if item.kind != "string" else "sum() cannot add text",
            "use ''.join(...)" if item.kind == "string" else None,
        )
    kinds = {item.kind, start.kind}
    if "any" in kinds:
        return ANY
    return INTEGER if kinds <= {"integer", "boolean"} else NUMBER


def _truth(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
    return BOOLEAN


def _all_any(name: str) -> Callable[[Sequence[Ty], dict[str, Ty]], Ty]:
    def result(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
        _iterable(args[0], 0, name)
        return BOOLEAN

    return result


def _sorted(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
    item = _iterable(args[0], 0, "sorted")
    if item.kind not in (*NUMERIC, "string", "array", "any"):
        raise SignatureError(0, f"sorted() orders numbers or text, not {ty_text(item)}")
    return array(item)


def _to_list(name: str) -> Callable[[Sequence[Ty], dict[str, Ty]], Ty]:
    def result(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
        if not args:
            return array(ANY, max_items=0) if name != "set" else Ty("set", items=ANY)
        item = _iterable(args[0], 0, name)
        if name == "set":
            return Ty("set", items=item)
        source = args[0]
        if source.kind == "array":
            return array(item, min_items=source.min_items, max_items=source.max_items)
        return array(item)

    return result


def _str(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
    return STRING


def _dict(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
    if not args:
        return Ty("object", fields=())
    if args[0].kind in ("object", "contract"):
        return args[0]
    item = _iterable(args[0], 0, "dict")
    value = item.elements[1] if item.kind == "tuple" and item.elements and len(item.elements) == 2 else ANY
    return Ty("object", items=value)


def _range(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
    for index, arg in enumerate(args):
        if arg.kind not in ("integer", "boolean", "any"):
            raise SignatureError(index, f"range() takes integers, not {ty_text(arg)}")
    return array(INTEGER)


def _enumerate(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
    item = _iterable(args[0], 0, "enumerate")
    return array(Ty("tuple", elements=(INTEGER, item)))


def _zip(args: Sequence[Ty], keywords: dict[str, Ty]) -> Ty:
    return array(Ty("tuple", elements=tuple(_iterable(arg, index, "zip") for index, arg in enumerate(args))))


FUNCTION_SIGNATURES: dict[str, Signature] = {
    "abs": Signature(_abs, "abs(number) -> number"),
    "all": Signature(_all_any("all"), "all(collection) -> boolean"),
    "any": Signature(_all_any("any"), "any(collection) -> boolean"),
    "bool": Signature(_truth, "bool(value) -> boolean"),
    "dict": Signature(_dict, "dict(pairs) -> record"),
    "enumerate": Signature(_enumerate, "enumerate(collection) -> list of (integer, item)"),
    "float": Signature(_convert("number"), "float(number or text) -> number"),
    "int": Signature(_convert("integer"), "int(number or text) -> integer"),
    "len": Signature(_len, "len(text, list or record) -> integer"),
    "list": Signature(_to_list("list"), "list(collection) -> list"),
    "max": Signature(_extreme("max"), "max(collection) -> item"),
    "min": Signature(_extreme("min"), "min(collection) -> item"),
    "range": Signature(_range, "range(integers) -> list of integers"),
    "reversed": Signature(_to_list("reversed"), "reversed(collection) -> list"),
    "round": Signature(_round, "round(number, digits) -> number"),
    "set": Signature(_to_list("set"), "set(collection) -> set"),
    "sorted": Signature(_sorted, "sorted(collection) -> list"),
    "str": Signature(_str, "str(value) -> string"),
    "sum": Signature(_sum, "sum(numbers) -> number"),
    "tuple": Signature(_to_list("tuple"), "tuple(collection) -> list"),
    "zip": Signature(_zip, "zip(collections) -> list of tuples"),
}


# --- methods --------------------------------------------------------------------------------------------------------


def method_kind(ty: Ty) -> str | None:
    """Which method table a receiver uses: 'str', 'list', 'dict', or None (no methods)."""
    return {"string": "str", "array": "list", "tuple": "list", "object": "dict", "contract": "dict"}.get(ty.kind)


def _string_args(name: str, count: tuple[int, int]) -> Callable[[Sequence[Ty]], None]:
    def check(args: Sequence[Ty]) -> None:
        low, high = count
        if not low <= len(args) <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            raise SignatureError(-1, f"{name}() takes {expected} arguments ({len(args)} given)")
        for index, arg in enumerate(args):
            wanted = "integer" if name == "replace" and index == 2 else "string"
            if name == "split" and index == 0 and arg.kind == "null":
                continue
            if arg.kind not in (wanted, "any") and not (wanted == "integer" and arg.kind == "boolean"):
                raise SignatureError(
                    index, f"{name}() takes {'an integer' if wanted == 'integer' else 'text'} here, not {ty_text(arg)}"
                )

    return check


_STRING_RESULTS: dict[str, tuple[Ty, tuple[int, int]]] = {
    **dict.fromkeys(("strip", "lstrip", "rstrip"), (STRING, (0, 1))),
    **dict.fromkeys(("lower", "upper", "title", "capitalize"), (STRING, (0, 0))),
    **dict.fromkeys(("isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper"), (BOOLEAN, (0, 0))),
    "startswith": (BOOLEAN, (1, 1)),
    "endswith": (BOOLEAN, (1, 1)),
    "split": (array(STRING, min_items=0), (0, 2)),
    "replace": (STRING, (2, 3)),
    "count": (Ty("integer", minimum=0), (1, 1)),
    "find": (Ty("integer", minimum=-1), (1, 1)),
}


def _string_method(name: str) -> Callable[[Ty, Sequence[Ty]], Ty]:
    result, count = _STRING_RESULTS[name]
    check = _string_args(name, count)

    def typed(receiver: Ty, args: Sequence[Ty]) -> Ty:
        check(args)
        return result

    return typed


def _join(receiver: Ty, args: Sequence[Ty]) -> Ty:
    if len(args) != 1:
        raise SignatureError(-1, f"join() takes exactly one argument ({len(args)} given)")
    item = element_type(args[0])
    if item is None:
        raise SignatureError(0, f"join() takes a list of text, not {ty_text(args[0])}")
    if item.kind not in ("string", "any") or item.optional:
        raise SignatureError(0, f"join() takes a list of text, not {ty_text(args[0])}", "convert with str(...) first")
    return STRING


def _list_count(receiver: Ty, args: Sequence[Ty]) -> Ty:
    if len(args) != 1:
        raise SignatureError(-1, f"count() takes exactly one argument ({len(args)} given)")
    return Ty("integer", minimum=0)


def _list_index(receiver: Ty, args: Sequence[Ty]) -> Ty:
    if not 1 <= len(args) <= 3:
        raise SignatureError(-1, f"index() takes 1 to 3 arguments ({len(args)} given)")
    return Ty("integer", minimum=0)


def _get(receiver: Ty, args: Sequence[Ty], fields: dict[str, Ty] | None, key: object) -> Ty:
    if not 1 <= len(args) <= 2:
        raise SignatureError(-1, f"get() takes 1 or 2 arguments ({len(args)} given)")
    if fields is not None and isinstance(key, str):
        value = fields.get(key)
        found = value.present() if value is not None else None
        if found is None:
            return args[1] if len(args) == 2 else Ty("null")
        if len(args) == 2:
            return join([found, args[1]]) if value is not None and value.optional else found
        return found.maybe() if value is not None and value.optional else found
    value = receiver.items if receiver.kind == "object" and receiver.items is not None else ANY
    return join([value, args[1]]) if len(args) == 2 else value.maybe()


METHOD_SIGNATURES: dict[str, dict[str, Callable[[Ty, Sequence[Ty]], Ty]]] = {
    "str": {**{name: _string_method(name) for name in _STRING_RESULTS}, "join": _join},
    "list": {"count": _list_count, "index": _list_index},
    "dict": {},  # get, keys, values, items: typed by the inference, which knows the record's fields
}
