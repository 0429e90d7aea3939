"""GPT-2 configuration, with the field names of Hugging Face's `GPT2Config`."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from model_lib.configuration_utils import ConfigError, PretrainedConfig


@dataclasses.dataclass(kw_only=True)
class GPT2Config(PretrainedConfig):
    """Sizes and switches of a GPT-2 decoder; defaults are those of the 124M "gpt2" model."""

    model_type: ClassVar[str] = "gpt2"
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "n_embd",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
        "max_position_embeddings": "n_positions",
    }

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # None means 4 * n_embd
    activation_function: str = "gelu_new"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False
    add_cross_attention: bool = False
    bos_token_id: int | None = 50256
    eos_token_id: int | list[int] | None = 50256

    def validate(self) -> None:
        self._require_positive(
            vocab_size=self.vocab_size,
            n_positions=self.n_positions,
            n_embd=self.n_embd,
            n_layer=self.n_layer,
            n_head=self.n_head,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        if self.n_inner is not None:
            self._require_positive(n_inner=self.n_inner)
        self._require_divisible("n_embd", "n_head")
        self._require_probability(
            resid_pdrop=self.resid_pdrop, embd_pdrop=self.embd_pdrop, attn_pdrop=self.attn_pdrop
        )
        self._require_activation("activation_function")
        if self.add_cross_attention:
            raise ConfigError(
                "GPT2Config: add_cross_attention (encoder-decoder use) is not supported"
            )

    @property
    def inner_size(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd
