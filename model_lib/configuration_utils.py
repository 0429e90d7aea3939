"""Model configurations that read and write Hugging Face `config.json` files unchanged.

A configuration is a dataclass whose field names are the Hugging Face field names of its
architecture, so a `config.json` written by that library loads here and one written here
loads there. Fields this library does not use (``summary_type``, ``transformers_version``,
...) are kept verbatim in ``extra`` and written back, so a load/save round trip never loses
what another tool put in the file.

This module deliberately does not import torch: reading a configuration must stay cheap for
the scaffold and for tools that only inspect checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, ClassVar, Self

CONFIG_NAME = "config.json"

# Dtype spellings accepted in `config.json` ("dtype" since transformers 5, "torch_dtype" before).
_DTYPE_NAMES = frozenset({"float32", "float16", "bfloat16", "float64"})

# The `hidden_act` / `activation_function` names that `model_lib.activations` implements,
# listed here so a config can be validated without importing torch.
ACTIVATION_NAMES = frozenset(
    {"gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "quick_gelu", "relu", "silu", "swish"}
)


class ConfigError(ValueError):
    """A configuration file or value that this library cannot build a model from."""


@dataclasses.dataclass(kw_only=True)
class PretrainedConfig:
    """Fields shared by every architecture, with the Hugging Face names and defaults."""

    model_type: ClassVar[str] = ""
    # Other spellings of a field used by some checkpoints: {alias: field name}. GPT-2 for
    # example stores `n_embd` where most architectures say `hidden_size`.
    attribute_map: ClassVar[dict[str, str]] = {}

    architectures: list[str] | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    tie_word_embeddings: bool = True
    dtype: str | None = None
    use_cache: bool = True
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dtype is not None and self.dtype not in _DTYPE_NAMES:
            raise ConfigError(
                f"{type(self).__name__}: dtype {self.dtype!r} is not one of {sorted(_DTYPE_NAMES)}"
            )
        self.validate()

    def validate(self) -> None:
        """Raise `ConfigError` for values no model can be built from; overridden per model."""

    # Aliases are readable as attributes so generic code can say `config.hidden_size` for
    # every architecture.
    def __getattr__(self, name: str) -> Any:
        target = type(self).attribute_map.get(name)
        if target is not None:
            return getattr(self, target)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    @classmethod
    def resolve_field(cls, name: str) -> str | None:
        """The dataclass field behind `name` (itself or an alias), or None if unknown."""
        if name in cls.field_names():
            return name
        return cls.attribute_map.get(name)

    @classmethod
    def _upgrade_legacy_fields(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Rewrite older spellings of fields into the current ones; overridden per model."""
        return values

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build a config from a parsed `config.json`, keeping unknown fields in `extra`."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        values = dict(data)
        found_type = values.pop("model_type", cls.model_type)
        if found_type != cls.model_type:
            raise ConfigError(
                f"{cls.__name__} reads model_type {cls.model_type!r}, "
                f"but the config says {found_type!r}"
            )
        if "torch_dtype" in values:
            legacy = values.pop("torch_dtype")
            values.setdefault("dtype", legacy)
        values = cls._upgrade_legacy_fields(values)
        known: dict[str, Any] = {}
        extra: dict[str, Any] = dict(values.pop("extra", {}) or {})
        for key, value in values.items():
            field = cls.resolve_field(key)
            if field is None:
                extra[key] = value
            elif field in known and key != field:
                # The canonical spelling wins over an alias given alongside it.
                continue
            else:
                known[field] = value
        try:
            return cls(**known, extra=extra)
        except TypeError as exc:
            raise ConfigError(f"{cls.__name__}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The `config.json` content: every field, the extras, and `model_type`."""
        out: dict[str, Any] = dict(self.extra)
        for field in dataclasses.fields(self):
            if field.name != "extra":
                out[field.name] = getattr(self, field.name)
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write `config.json` into `folder` (created if needed) and return its path."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        path = target / CONFIG_NAME
        path.write_text(self.to_json_string(), encoding="utf-8")
        return path

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> Self:
        """Read `folder/config.json`; a missing or malformed file is a `ConfigError`."""
        return cls.from_dict(read_config_dict(folder))

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """`eos_token_id` as a tuple, since checkpoints store either one id or a list."""
        return normalize_token_ids(self.eos_token_id)

    def _require_positive(self, **values: int | float) -> None:
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{type(self).__name__}: {name} must be positive, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{type(self).__name__}: {name} must be finite, got {value!r}")

    def _require_probability(self, **values: float) -> None:
        for name, value in values.items():
            if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{type(self).__name__}: {name} must be in [0, 1), got {value!r}")

    def _require_activation(self, name: str) -> None:
        value = getattr(self, name)
        if value not in ACTIVATION_NAMES:
            raise ConfigError(
                f"{type(self).__name__}: {name} {value!r} is not supported; "
                f"known: {sorted(ACTIVATION_NAMES)}"
            )

    def _require_divisible(self, numerator_name: str, denominator_name: str) -> None:
        numerator = getattr(self, numerator_name)
        denominator = getattr(self, denominator_name)
        if numerator % denominator:
            raise ConfigError(
                f"{type(self).__name__}: {numerator_name}={numerator} is not divisible by "
                f"{denominator_name}={denominator}"
            )


def normalize_token_ids(value: int | list[int] | tuple[int, ...] | None) -> tuple[int, ...]:
    """One id, a list of ids or None, as a tuple of ints; anything else is a `ConfigError`."""
    if value is None:
        return ()
    items = [value] if isinstance(value, int) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items
    ):
        raise ConfigError(f"token ids must be non-negative integers, got {value!r}")
    return tuple(items)


def read_config_dict(folder: str | Path) -> dict[str, Any]:
    """Parse `folder/config.json`, naming the file in every error."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {Path(folder)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
