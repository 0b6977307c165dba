"""The models file (`--models FILE`, `STRATUM_MODELS`): per-model settings a user gives for self-hosted models.

```yaml
models:
  hosted_vllm/Qwen/Qwen2.5-7B-Instruct:
    output: [json_schema, json_object]   # the strategies to try, in order
    schema_field: guided_json            # vLLM before 0.12
    price: [0.2, 0.6]                    # US dollars per million input and output tokens
```

Only what Stratum cannot find out itself belongs here; every key is optional. A model listed with only `price`
keeps Stratum's own choice of output strategy. Prices here are the lowest layer of one price table: `STRATUM_PRICES`
overrides them, `--price` overrides both, and a plan's own `prices:` win for its calls (see `price_table`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from stratum_core.errors import ConfigurationError
from stratum_core.llm._structured import SCHEMA_FIELDS, STRATEGIES, OutputProfile, OutputStrategy, SchemaField

__all__ = ["MODELS_ENV", "ModelSettings", "load_models", "load_models_file", "parse_models", "price_table"]

MODELS_ENV = "STRATUM_MODELS"
_MODEL_KEYS = ("output", "schema_field", "price")
_MAX_BYTES = 1_000_000

Prices = dict[str, tuple[float, float]]
"""Model prices in US dollars per million (input, output) tokens, by model string."""


@dataclass(frozen=True)
class ModelSettings:
    """What a models file says: output profiles and prices, by model string."""

    profiles: dict[str, OutputProfile] = field(default_factory=dict)
    prices: Prices = field(default_factory=dict)


def price_table(
    *,
    models_file: Mapping[str, tuple[float, float]] | None = None,
    environment: Mapping[str, tuple[float, float]] | None = None,
    command_line: Mapping[str, tuple[float, float]] | None = None,
) -> Prices:
    """The configured prices, one model at a time: `--price` over `STRATUM_PRICES` over the models file's `price:`."""
    return {**(models_file or {}), **(environment or {}), **(command_line or {})}


def load_models_file(path: str | os.PathLike[str]) -> dict[str, OutputProfile]:
    """The output profiles a models file configures, by model string; ConfigurationError names what is wrong."""
    return load_models(path).profiles


def load_models(path: str | os.PathLike[str]) -> ModelSettings:
    """Everything a models file configures (output profiles and prices); ConfigurationError names what is wrong."""
    file = Path(path)
    try:
        if file.stat().st_size > _MAX_BYTES:
            raise ConfigurationError(f"{file}: the models file is larger than {_MAX_BYTES:,} bytes")
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigurationError(f"{file}: cannot read the models file: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigurationError(f"{file}: the models file is not UTF-8 text") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigurationError(f"{file}: not valid YAML: {e}") from e
    return parse_models(data, source=str(file))


def parse_models(data: Any, *, source: str = "<models>") -> ModelSettings:
    """The settings in a parsed models document (`{models: {MODEL: {output, schema_field, price}}}`)."""
    if data is None:
        return ModelSettings()
    if not isinstance(data, Mapping) or set(data) - {"models"}:
        raise ConfigurationError(f"{source}: expected a mapping with one key, 'models'")
    models = data.get("models") or {}
    if not isinstance(models, Mapping):
        raise ConfigurationError(f"{source}: models: expected a mapping of model strings to settings")
    profiles: dict[str, OutputProfile] = {}
    prices: Prices = {}
    for model, settings in models.items():
        where = f"{source}: models.{model}"
        if not isinstance(model, str) or not model:
            raise ConfigurationError(f"{source}: models: model names must be non-empty strings, got {model!r}")
        if settings is None:
            settings = {}
        if not isinstance(settings, Mapping):
            raise ConfigurationError(f"{where}: expected a mapping with {' and/or '.join(_MODEL_KEYS)}")
        unknown = sorted(str(key) for key in settings if key not in _MODEL_KEYS)
        if unknown:
            raise ConfigurationError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_MODEL_KEYS)})")
        if "price" in settings:
            prices[model] = _price(settings["price"], where=f"{where}.price")
            if set(settings) == {"price"}:  # only a price: Stratum still chooses how to ask for the output
                continue
        output = settings.get("output", list(STRATEGIES))
        if isinstance(output, str):
            output = [output]
        if not isinstance(output, list) or not output or any(item not in STRATEGIES for item in output):
            raise ConfigurationError(
                f"{where}.output: expected a non-empty list of {', '.join(STRATEGIES)}, got {output!r}"
            )
        if len(set(output)) != len(output):
            raise ConfigurationError(f"{where}.output: a strategy is listed twice: {output!r}")
        field = settings.get("schema_field", "response_format")
        if field not in SCHEMA_FIELDS:
            raise ConfigurationError(f"{where}.schema_field: expected one of {', '.join(SCHEMA_FIELDS)}, got {field!r}")
        profiles[model] = OutputProfile(
            strategies=tuple(cast(list[OutputStrategy], output)),
            schema_field=cast(SchemaField, field),
            reason=f"configured in {source}",
        )
    return ModelSettings(profiles, prices)


def _price(value: Any, *, where: str) -> tuple[float, float]:
    """`[IN, OUT]`: US dollars per million input and output tokens, each a finite number >= 0."""
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(item, int | float) and not isinstance(item, bool) for item in value)
        or not all(math.isfinite(item) and item >= 0 for item in value)
    ):
        raise ConfigurationError(
            f"{where}: expected [IN, OUT], US dollars per million input and output tokens (numbers >= 0), got {value!r}"
        )
    return float(value[0]), float(value[1])
