"""Learned context: what `stratum optimize` learned for an infer function, kept as a reviewable file beside the plan.

```yaml
stratum_learned: 1
function: classify
contract_hash: 3f2a9c01b7de        # of the function's input and output schemas; a changed contract refuses it
instructions: |
  Tickets that mention invoices or charges go to billing ...
demos:
  - input: {text: "I was charged twice."}
    output: {team: billing, priority: 2}
provenance: {optimizer: gepa, model: ..., data_hash: ..., scores: {baseline: 0.5, optimized: 0.83}, ...}
```

An infer function names it with `learned: FILE` (relative to the plan). The runtime renders it into Stratum's own
prompt (the instructions replace the function's `context`, the demos become example turns) without importing
DSPy; the trace records the artifact's hash. Loading never runs code: the file is YAML data, size-bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

__all__ = [
    "LEARNED_FORMAT",
    "MAX_LEARNED_BYTES",
    "LearnedContext",
    "LearnedDemo",
    "LearnedError",
    "function_contract_hash",
    "learned_yaml",
    "load_learned",
]

LEARNED_FORMAT = 1
MAX_LEARNED_BYTES = 1_000_000


class LearnedError(ValueError):
    """A learned-context file that cannot be used; the message says why (the loader adds where)."""


class LearnedDemo(BaseModel):
    """One demonstration: an input and the output it should give."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: dict[str, JsonValue]
    output: JsonValue


class LearnedContext(BaseModel):
    """The learned instructions and demonstrations for one infer function, with where they came from."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    format: int = Field(default=LEARNED_FORMAT, alias="stratum_learned")
    function: str
    contract_hash: str
    instructions: str = ""
    demos: tuple[LearnedDemo, ...] = ()
    provenance: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def hash(self) -> str:
        """The content hash of what reaches the prompt (instructions, demos) and the contract it was learned for."""
        from stratum_core.plan._schema import content_hash  # the schema module imports the plan model, which needs this

        return content_hash(
            {
                "contract_hash": self.contract_hash,
                "instructions": self.instructions,
                "demos": [demo.model_dump(mode="json") for demo in self.demos],
            }
        )


def function_contract_hash(inputs: Mapping[str, Any], output: Any, contracts: Mapping[str, Any]) -> str:
    """The hash an artifact is tied to: the function's input schemas and output schema (types, not prose)."""
    from stratum_core.plan._schema import content_hash, type_schema

    return content_hash(
        {
            "input": {name: type_schema(spec, contracts) for name, spec in sorted(inputs.items())},
            "output": type_schema(output, contracts),
        }
    )


def load_learned(path: str | Path) -> LearnedContext:
    """Read a learned-context file; LearnedError says what is wrong with it."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_LEARNED_BYTES:
            raise LearnedError(f"the file is {size:,} bytes, more than {MAX_LEARNED_BYTES:,}")
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LearnedError("no such file") from None
    except OSError as e:
        raise LearnedError(f"cannot read it: {e.strerror or e}") from e
    except UnicodeDecodeError:
        raise LearnedError("it is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise LearnedError(f"not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(data, Mapping) or "stratum_learned" not in data:
        raise LearnedError("not a learned-context file (no 'stratum_learned' key; write it with `stratum optimize`)")
    if data.get("stratum_learned") != LEARNED_FORMAT:
        raise LearnedError(
            f"format {data.get('stratum_learned')!r} is not supported (this Stratum reads {LEARNED_FORMAT})"
        )
    try:
        return LearnedContext.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise LearnedError(f"{where}: {first['msg']}{more}") from None


def learned_yaml(learned: LearnedContext) -> str:
    """The artifact as YAML text, in a stable, reviewable order (instructions as a block)."""
    data = learned.model_dump(mode="json", by_alias=True)
    ordered = {key: data[key] for key in ("stratum_learned", "function", "contract_hash", "instructions", "demos")}
    ordered["provenance"] = data["provenance"]
    return yaml.dump(ordered, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so a reviewer reads the instructions as text."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)
