"""Llama (Touvron et al., 2023): a decoder-only transformer.

Pre-norm blocks with RMSNorm, rotary position embeddings (RoPE) applied to queries and keys,
a SwiGLU MLP, and grouped-query attention: `num_key_value_heads` key/value heads shared by
groups of query heads, which shrinks the KV cache by the group size.

Shapes: B batch, S new tokens, P past (cached) tokens, E hidden_size, H query heads,
K key/value heads, D head_dim, I intermediate_size, V vocab.
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
from model_lib.models.llama.configuration_llama import LlamaConfig


class LlamaRMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 whatever the input dtype."""

    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        dtype = hidden.dtype
        x = hidden.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_inverse_frequencies(config: LlamaConfig) -> torch.Tensor:
    """The rotation speed of each pair of dimensions, [D/2] float32, for the config's RoPE."""
    params = config.rope_parameters
    dim = config.head_dim
    exponents = torch.arange(0, dim, 2, dtype=torch.int64, device="cpu").float() / dim
    inv_freq = 1.0 / (float(params["rope_theta"]) ** exponents)
    rope_type = params.get("rope_type", "default")
    if rope_type == "linear":
        # Position interpolation: positions are divided by `factor`.
        return inv_freq / float(params["factor"])
    if rope_type == "llama3":
        return _llama3_frequencies(inv_freq, params)
    return inv_freq


def _llama3_frequencies(inv_freq: torch.Tensor, params: dict) -> torch.Tensor:
    """Llama 3.1 scaling: slow (long-wavelength) dimensions are slowed by `factor`, fast
    ones are kept, and those in between are blended linearly in 1/wavelength."""
    factor = float(params["factor"])
    low = float(params["low_freq_factor"])
    high = float(params["high_freq_factor"])
    context = float(params["original_max_position_embeddings"])
    wavelength = 2 * math.pi / inv_freq
    scaled = torch.where(wavelength > context / low, inv_freq / factor, inv_freq)
    blend = (context / wavelength - low) / (high - low)
    blended = (1 - blend) * scaled / factor + blend * scaled
    in_between = (wavelength >= context / high) & (wavelength <= context / low)
    return torch.where(in_between, blended, scaled)


class LlamaRotaryEmbedding(nn.Module):
    """cos/sin tables for the positions at hand, computed in float32.

    The inverse frequencies are derived from the config rather than stored as a buffer, so a
    model built on the meta device and filled from a checkpoint needs nothing recomputed.
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self._inv_freq = rope_inverse_frequencies(config)  # [D/2]

    def forward(
        self, position_ids: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._inv_freq.device != position_ids.device:
            self._inv_freq = self._inv_freq.to(position_ids.device)
        angles = position_ids[..., None].float() * self._inv_freq  # [B, S, D/2]
        angles = torch.cat((angles, angles), dim=-1)  # [B, S, D]
        return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    # [..., D]: (x1, x2) -> (-x2, x1), halves as in the Hugging Face checkpoints' layout.
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x [B, heads, S, D]; cos/sin [B, S, D] broadcast over heads.
    cos, sin = cos[:, None], sin[:, None]
    return x * cos + rotate_half(x) * sin


class LlamaAttention(nn.Module):
    def __init__(self, config: LlamaConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.attention_dropout = config.attention_dropout
        bias = config.attention_bias
        hidden, heads_dim = config.hidden_size, self.num_heads * self.head_dim
        self.q_proj = nn.Linear(hidden, heads_dim, bias=bias)
        self.k_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(heads_dim, hidden, bias=bias)

    def forward(
        self,
        hidden: torch.Tensor,  # [B, S, E]
        rotary: tuple[torch.Tensor, torch.Tensor],  # cos, sin: [B, S, D]
        mask: torch.Tensor | None,  # [B, 1, S, P+S] bool, or None
        is_causal: bool,
        cache: KVCache | None,
    ) -> torch.Tensor:
        batch, seq, _ = hidden.shape
        query = self.q_proj(hidden).view(batch, seq, self.num_heads, self.head_dim)
        key = self.k_proj(hidden).view(batch, seq, self.num_kv_heads, self.head_dim)
        value = self.v_proj(hidden).view(batch, seq, self.num_kv_heads, self.head_dim)
        query, key, value = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
        # query [B, H, S, D]; key, value [B, K, S, D]
        cos, sin = rotary
        query, key = apply_rotary(query, cos, sin), apply_rotary(key, cos, sin)
        if cache is not None:
            key, value = cache.update(self.layer_idx, key, value)  # [B, K, P+S, D]
        out = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
            is_causal=is_causal,
            scale=self.head_dim**-0.5,
            enable_gqa=self.num_kv_heads != self.num_heads,
        )  # [B, H, S, D]
        out = out.transpose(1, 2).reshape(batch, seq, self.num_heads * self.head_dim)
        return self.o_proj(out)  # [B, S, E]


class LlamaMLP(nn.Module):
    """SwiGLU: down(act(gate(x)) * up(x))."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        hidden, inner, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_proj = nn.Linear(hidden, inner, bias=bias)
        self.up_proj = nn.Linear(hidden, inner, bias=bias)
        self.down_proj = nn.Linear(inner, hidden, bias=bias)
        self.act = get_activation(config.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # [B, S, E] -> [B, S, I] -> [B, S, E]
        return self.down_proj(self.act(self.gate_proj(hidden)) * self.up_proj(hidden))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = LlamaAttention(config, layer_idx)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = LlamaMLP(config)

    def forward(
        self,
        hidden: torch.Tensor,  # [B, S, E]
        rotary: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None,
    ) -> torch.Tensor:
        hidden = hidden + self.self_attn(
            self.input_layernorm(hidden), rotary, mask, is_causal, cache
        )
        return hidden + self.mlp(self.post_attention_layernorm(hidden))


class LlamaPreTrainedModel(PreTrainedModel):
    config_class = LlamaConfig
    base_model_prefix = "model"
    # Checkpoints from before RoPE tables became non-persistent saved them per layer.
    _keys_to_ignore_on_load = (r"rotary_emb\.inv_freq$",)
    _head_keys = (r"^lm_head\.",)
    config: LlamaConfig

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, LlamaRMSNorm):
            nn.init.ones_(module.weight)


class LlamaModel(LlamaPreTrainedModel):
    """The Llama trunk: embeddings, decoder layers, final RMSNorm; returns hidden states."""

    task = "base"

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.layers = nn.ModuleList(
            LlamaDecoderLayer(config, i) for i in range(config.num_hidden_layers)
        )
        self.norm = LlamaRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config)
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
            past_key_values = KVCache(self.config.num_hidden_layers)
        cache = past_key_values if use_cache else None
        past = cache.get_seq_length() if cache is not None else 0
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
        hidden = self.embed_tokens(input_ids)  # [B, S, E]
        rotary = self.rotary_emb(position_ids, hidden.dtype)  # cos, sin: [B, S, D]
        for layer in self.layers:
            hidden = layer(hidden, rotary, mask, is_causal, cache)
        hidden = self.norm(hidden)  # [B, S, E]
        return BaseModelOutput(last_hidden_state=hidden, past_key_values=cache)


class LlamaForCausalLM(LlamaPreTrainedModel, GenerationMixin):
    """Llama with the language-modelling head (next-token logits) and `generate()`."""

    task = "causal-lm"

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def tied_weights(self) -> dict[str, str]:
        if self.config.tie_word_embeddings:
            return {"lm_head.weight": "model.embed_tokens.weight"}
        return {}

    def num_cache_layers(self) -> int:
        return self.config.num_hidden_layers

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
        out = self.model(
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
