"""Attention masks and position ids for `scaled_dot_product_attention`.

Every model builds its masks here so padding and caching behave the same everywhere: a
padded batch gives each real token exactly the output it gets alone.
"""

from __future__ import annotations

import torch


def attention_mask_for_sdpa(
    attention_mask: torch.Tensor | None,
    *,
    query_length: int,
    past_length: int,
    causal: bool,
    device: torch.device,
) -> tuple[torch.Tensor | None, bool]:
    """Return `(mask, is_causal)` to pass to `scaled_dot_product_attention`.

    `attention_mask` is the usual [batch, past + query] tensor of 1 (token) and 0 (padding).
    The returned mask is boolean [batch, 1, query, past + query], True where attention is
    allowed, or None when SDPA needs none: no padding and either no causality or a single
    query (decoding) or a fresh prompt (`is_causal=True`, which lets SDPA pick its fastest
    kernel).

    A padding query would otherwise see no key at all (left padding under a causal mask),
    which makes softmax produce NaN; such rows may attend to their own position. Only
    outputs at padding positions change, and those are meaningless anyway.
    """
    key_length = past_length + query_length
    if attention_mask is not None:
        if attention_mask.dim() != 2 or attention_mask.shape[1] != key_length:
            raise ValueError(
                f"attention_mask must be [batch, {key_length}] (past {past_length} + "
                f"new {query_length} tokens), got {tuple(attention_mask.shape)}"
            )
        if bool(attention_mask.all()):
            attention_mask = None
    if attention_mask is None:
        if not causal or query_length == 1:
            return None, False
        if past_length == 0:
            return None, True
    query_positions = torch.arange(past_length, key_length, device=device)
    key_positions = torch.arange(key_length, device=device)
    if causal:
        allowed = key_positions[None, :] <= query_positions[:, None]  # [query, key]
        allowed = allowed[None, None]  # [1, 1, query, key]
    else:
        allowed = torch.ones(1, 1, query_length, key_length, dtype=torch.bool, device=device)
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool()[:, None, None, :]  # [batch, 1, query, key]
        own_position = key_positions[None, :] == query_positions[:, None]
        allowed = allowed | own_position[None, None]
    return allowed, False


def position_ids_from_mask(
    attention_mask: torch.Tensor | None,
    *,
    query_length: int,
    past_length: int,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Positions [batch, query] that count only real tokens, so left padding shifts nothing."""
    if attention_mask is None:
        positions = torch.arange(past_length, past_length + query_length, device=device)
        return positions.unsqueeze(0).expand(batch_size, -1)
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)[:, past_length : past_length + query_length]
