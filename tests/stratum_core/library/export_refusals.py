# mypy: disable-error-code="empty-body"
"""A library module with constructs that have no plan form, for the export tests (imported, never run)."""

from __future__ import annotations

from stratum_core.library import ComputeFn, await_human, compute, flow, infer, parallel


def helper(text: str) -> str:
    return text.strip()


@infer(intent="Tag the text.", ensure=lambda r: len(r) > 2)
def tag(text: str) -> str: ...


@compute
def shout(text: str) -> str:
    return text.upper()


@flow
async def branching(text: str, loud: bool) -> str:
    if loud:
        result = await shout(text)
    else:
        result = await tag(text)
    return result


@flow
async def looping(texts: list[str]) -> str:
    for text in texts:
        await shout(text)
    return "done"


@flow
async def arithmetic(text: str) -> str:
    first = await shout(text + "!")
    return first


@flow
async def plain_call(text: str) -> str:
    cleaned = await helper(text)  # type: ignore[misc]
    return cleaned  # type: ignore[no-any-return]


@flow
async def whole_decision(text: str) -> str:
    decision = await await_human(question="OK?", decision_type=bool)
    shouted = await shout(decision)  # type: ignore[arg-type]
    return shouted


@flow
async def python_validate(text: str) -> list[str]:
    both = await parallel(shout(text), shout(text), validate=lambda outputs: len(outputs) == 2)
    return both


@flow
async def type_mismatch(count: int) -> str:
    loud = await shout(count)  # type: ignore[arg-type]
    return loud


def make_local() -> ComputeFn[[str], str]:
    @compute
    def local(text: str) -> str:
        return text

    return local


LOCAL = make_local()


@flow
async def uses_local(text: str) -> str:
    same = await LOCAL(text)
    return same
