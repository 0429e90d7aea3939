"""BERT configuration, with the field names of Hugging Face's `BertConfig`."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from model_lib.configuration_utils import ConfigError, PretrainedConfig


@dataclasses.dataclass(kw_only=True)
class BertConfig(PretrainedConfig):
    """Sizes of a BERT encoder; defaults are those of bert-base."""

    model_type: ClassVar[str] = "bert"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    position_embedding_type: str = "absolute"
    is_decoder: bool = False
    add_cross_attention: bool = False
    classifier_dropout: float | None = None
    pad_token_id: int | None = 0

    def validate(self) -> None:
        self._require_positive(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            layer_norm_eps=self.layer_norm_eps,
        )
        self._require_divisible("hidden_size", "num_attention_heads")
        self._require_probability(
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
        )
        self._require_activation("hidden_act")
        if self.position_embedding_type != "absolute":
            raise ConfigError(
                f"BertConfig: position_embedding_type {self.position_embedding_type!r} is not "
                "supported; only 'absolute'"
            )
        if self.is_decoder or self.add_cross_attention:
            raise ConfigError(
                "BertConfig: decoder use (is_decoder, add_cross_attention) is not supported"
            )
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(
                f"BertConfig: pad_token_id {self.pad_token_id} outside the vocabulary "
                f"of {self.vocab_size}"
            )
