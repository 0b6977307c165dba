"""The models file (`--models FILE`, `STRATUM_MODELS`): per-model settings a user gives for self-hosted models.

```yaml
models:
  hosted_vllm/Qwen/Qwen2.5-7B-Instruct:
    output: [json_schema, json_object]   # the strategies to try, in order
    schema_field: guided_json            # vLLM before 0.12
```

Only what Stratum cannot find out itself belongs here; every key is optional.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml

from stratum_core.errors import ConfigurationError
from stratum_core.llm._structured import SCHEMA_FIELDS, STRATEGIES, OutputProfile, OutputStrategy, SchemaField

__all__ = ["MODELS_ENV", "load_models_file", "parse_models"]

MODELS_ENV = "STRATUM_MODELS"
_MODEL_KEYS = ("output", "schema_field")
_MAX_BYTES = 1_000_000


def load_models_file(path: str | os.PathLike[str]) -> dict[str, OutputProfile]:
    """The output profiles a models file configures, by model string; ConfigurationError names what is wrong."""
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


def parse_models(data: Any, *, source: str = "<models>") -> dict[str, OutputProfile]:
    """The output profiles in a parsed models document (`{models: {MODEL: {output, schema_field}}}`)."""
    if data is None:
        return {}
    if not isinstance(data, Mapping) or set(data) - {"models"}:
        raise ConfigurationError(f"{source}: expected a mapping with one key, 'models'")
    models = data.get("models") or {}
    if not isinstance(models, Mapping):
        raise ConfigurationError(f"{source}: models: expected a mapping of model strings to settings")
    profiles: dict[str, OutputProfile] = {}
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
    return profiles
