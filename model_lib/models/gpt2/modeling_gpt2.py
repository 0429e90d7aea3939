"""GPT-2 (Radford et al., 2019): a decoder-only transformer.

Pre-LayerNorm blocks, learned absolute position embeddings, GELU MLPs and an LM head tied to
the token embeddings. Projections are stored [in, out] ("Conv1D"), the layout of every GPT-2
checkpoint, so weights load without transposing.

Shapes: B batch, S new tokens, P past (cached) tokens, E n_embd, H heads, D = E / H,
V vocab.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model_lib.activations import get_activation
from model_lib.cache import KVCache
from model_lib.generation import GenerationMixin
from model_lib.losses import causal_lm_loss
from model_lib.masking import attention_mask_for_sdpa, position_ids_from_mask
from model_lib.modeling_outputs import BaseModelOutput, CausalLMOutput
from model_lib.modeling_utils import PreTrainedModel, check_input_ids
from model_lib.models.gpt2.configuration_gpt2 import GPT2Config


class Conv1D(nn.Module):
    """A linear layer whose weight is stored [in, out], as GPT-2 checkpoints store it."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [..., in] -> [..., out]
        flat = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return flat.view(*x.shape[:-1], flat.shape[-1])


class GPT2Attention(nn.Module):
    def __init__(self, config: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd)
        self.attn_pdrop = config.attn_pdrop
        self.resid_dropout = nn.Dropout(config.resid_pdrop)
        self.upcast = config.reorder_and_upcast_attn
        scale = 1.0 / math.sqrt(self.head_dim) if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            scale /= layer_idx + 1
        self.scale = scale

    def forward(
        self,
        hidden: torch.Tensor,  # [B, S, E]
        mask: torch.Tensor | None,  # [B, 1, S, P+S] bool, or None
        is_causal: bool,
        cache: KVCache | None,
    ) -> torch.Tensor:
        batch, seq, embd = hidden.shape
        qkv = self.c_attn(hidden)  # [B, S, 3E]
        qkv = qkv.view(batch, seq, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, S, D]
        if cache is not None:
            key, value = cache.update(self.layer_idx, key, value)  # [B, H, P+S, D]
        dtype = query.dtype
        if self.upcast:
            query, key, value = query.float(), key.float(), value.float()
        out = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=mask,
            dropout_p=self.attn_pdrop if self.training else 0.0,
            is_causal=is_causal,
            scale=self.scale,
        )  # [B, H, S, D]
        out = out.to(dtype).transpose(1, 2).reshape(batch, seq, embd)  # [B, S, E]
        return self.resid_dropout(self.c_proj(out))


class GPT2MLP(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.c_fc = Conv1D(config.n_embd, config.inner_size)
        self.c_proj = Conv1D(config.inner_size, config.n_embd)
        self.act = get_activation(config.activation_function)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # [B, S, E] -> [B, S, inner] -> [B, S, E]
        return self.dropout(self.c_proj(self.act(self.c_fc(hidden))))


class GPT2Block(nn.Module):
    def __init__(self, config: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(config)

    def forward(
        self,
        hidden: torch.Tensor,  # [B, S, E]
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None,
    ) -> torch.Tensor:
        hidden = hidden + self.attn(self.ln_1(hidden), mask, is_causal, cache)
        return hidden + self.mlp(self.ln_2(hidden))


class GPT2PreTrainedModel(PreTrainedModel):
    config_class = GPT2Config
    base_model_prefix = "transformer"
    # Older checkpoints saved the causal-mask buffers of each attention layer.
    _keys_to_ignore_on_load = (r"(^|\.)attn\.bias$", r"(^|\.)attn\.masked_bias$")
    _head_keys = (r"^lm_head\.",)
    config: GPT2Config

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, Conv1D):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            nn.init.zeros_(module.bias)
        # Residual projections are scaled down by depth (GPT-2 paper, section 2.3).
        if isinstance(module, GPT2Attention | GPT2MLP):
            nn.init.normal_(module.c_proj.weight, std=std / math.sqrt(2 * self.config.n_layer))


class GPT2Model(GPT2PreTrainedModel):
    """The GPT-2 trunk: embeddings, blocks, final LayerNorm; returns hidden states."""

    task = "base"

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(GPT2Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,  # [B, S]
        attention_mask: torch.Tensor | None = None,  # [B, P+S], 1 token / 0 padding
        position_ids: torch.Tensor | None = None,  # [B, S]; default counts real tokens
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
    ) -> BaseModelOutput:
        check_input_ids(input_ids, self.config.vocab_size)
        batch, seq = input_ids.shape
        if use_cache and past_key_values is None:
            past_key_values = KVCache(self.config.n_layer)
        cache = past_key_values if use_cache else None
        past = cache.get_seq_length() if cache is not None else 0
        if past + seq > self.config.n_positions:
            raise ValueError(
                f"sequence of {past + seq} tokens exceeds n_positions={self.config.n_positions}"
            )
        mask, is_causal = attention_mask_for_sdpa(
            attention_mask,
            query_length=seq,
            past_length=past,
            causal=True,
            device=input_ids.device,
        )
        if position_ids is None:
            position_ids = position_ids_from_mask(
                attention_mask,
                query_length=seq,
                past_length=past,
                batch_size=batch,
                device=input_ids.device,
            )
        hidden = self.wte(input_ids) + self.wpe(position_ids)  # [B, S, E]
        hidden = self.drop(hidden)
        for block in self.h:
            hidden = block(hidden, mask, is_causal, cache)
        hidden = self.ln_f(hidden)  # [B, S, E]
        return BaseModelOutput(last_hidden_state=hidden, past_key_values=cache)


class GPT2LMHeadModel(GPT2PreTrainedModel, GenerationMixin):
    """GPT-2 with the language-modelling head (next-token logits) and `generate()`."""

    task = "causal-lm"

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.post_init()

    def tied_weights(self) -> dict[str, str]:
        if self.config.tie_word_embeddings:
            return {"lm_head.weight": "transformer.wte.weight"}
        return {}

    def num_cache_layers(self) -> int:
        return self.config.n_layer

    def max_sequence_length(self) -> int | None:
        return self.config.n_positions

    def forward(
        self,
        input_ids: torch.Tensor,  # [B, S]
        attention_mask: torch.Tensor | None = None,  # [B, P+S]
        position_ids: torch.Tensor | None = None,  # [B, S]
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        labels: torch.Tensor | None = None,  # [B, S]; -100 marks ignored positions
        num_logits_to_keep: int = 0,  # 0: logits for every position; n: the last n only
    ) -> CausalLMOutput:
        out = self.transformer(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
        )
        hidden = out.last_hidden_state  # [B, S, E]
        if num_logits_to_keep:
            hidden = hidden[:, -num_logits_to_keep:]
        logits = self.lm_head(hidden)  # [B, S or kept, V]
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return CausalLMOutput(logits=logits, loss=loss, past_key_values=out.past_key_values)
