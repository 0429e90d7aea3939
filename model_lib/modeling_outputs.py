"""What the models return: small dataclasses with the Hugging Face field names."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model_lib.cache import KVCache


@dataclass
class BaseModelOutput:
    """Hidden states of a base model; decoders add their cache, encoders their pooler."""

    last_hidden_state: torch.Tensor  # [batch, seq, hidden]
    past_key_values: KVCache | None = None
    pooler_output: torch.Tensor | None = None  # [batch, hidden]


@dataclass
class CausalLMOutput:
    logits: torch.Tensor  # [batch, seq or kept positions, vocab]
    loss: torch.Tensor | None = None
    past_key_values: KVCache | None = None


@dataclass
class MaskedLMOutput:
    logits: torch.Tensor  # [batch, seq, vocab]
    loss: torch.Tensor | None = None
