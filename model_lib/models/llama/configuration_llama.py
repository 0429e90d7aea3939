"""Llama configuration, with the field names of Hugging Face's `LlamaConfig`."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from model_lib.configuration_utils import ConfigError, PretrainedConfig

# RoPE variants implemented by `modeling_llama.rope_inverse_frequencies`, with the
# parameters each one needs besides `rope_theta`.
ROPE_TYPES: dict[str, tuple[str, ...]] = {
    "default": (),
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}


@dataclasses.dataclass(kw_only=True)
class LlamaConfig(PretrainedConfig):
    """Sizes of a Llama decoder; defaults are those of Llama 2 7B."""

    model_type: ClassVar[str] = "llama"

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None  # None: one KV head per query head (no GQA)
    head_dim: int | None = None  # None: hidden_size // num_attention_heads
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    rope_parameters: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"rope_type": "default", "rope_theta": 10000.0}
    )
    attention_bias: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    pretraining_tp: int = 1
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    tie_word_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        heads = self.num_attention_heads
        if self.head_dim is None and isinstance(heads, int) and heads > 0:
            self.head_dim = self.hidden_size // self.num_attention_heads
        super().__post_init__()

    @classmethod
    def _upgrade_legacy_fields(cls, values: dict[str, Any]) -> dict[str, Any]:
        # Before transformers 5, RoPE was `rope_theta` plus an optional `rope_scaling` dict
        # whose type key was "type" or "rope_type".
        if "rope_parameters" in values or not ({"rope_theta", "rope_scaling"} & values.keys()):
            return values
        values = dict(values)
        scaling = dict(values.pop("rope_scaling", None) or {})
        rope_type = scaling.pop("rope_type", None) or scaling.pop("type", None) or "default"
        scaling.pop("type", None)
        theta = values.pop("rope_theta", 10000.0)
        values["rope_parameters"] = {"rope_type": rope_type, "rope_theta": theta, **scaling}
        return values

    def validate(self) -> None:
        self._require_positive(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            max_position_embeddings=self.max_position_embeddings,
            rms_norm_eps=self.rms_norm_eps,
        )
        self._require_divisible("num_attention_heads", "num_key_value_heads")
        if self.head_dim % 2:
            raise ConfigError(f"LlamaConfig: head_dim must be even for RoPE, got {self.head_dim}")
        self._require_probability(attention_dropout=self.attention_dropout)
        self._require_activation("hidden_act")
        self._validate_rope()

    def _validate_rope(self) -> None:
        params = self.rope_parameters
        if not isinstance(params, dict):
            raise ConfigError(f"LlamaConfig: rope_parameters must be an object, got {params!r}")
        rope_type = params.get("rope_type", "default")
        if rope_type not in ROPE_TYPES:
            raise ConfigError(
                f"LlamaConfig: rope_type {rope_type!r} is not supported; "
                f"supported: {sorted(ROPE_TYPES)}"
            )
        for name in ("rope_theta", *ROPE_TYPES[rope_type]):
            if name not in params:
                raise ConfigError(f"LlamaConfig: rope_type {rope_type!r} needs {name!r}")
            self._require_positive(**{name: params[name]})
        if rope_type == "llama3" and params["high_freq_factor"] <= params["low_freq_factor"]:
            raise ConfigError("LlamaConfig: llama3 RoPE needs high_freq_factor > low_freq_factor")
