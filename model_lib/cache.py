"""The key/value cache that makes incremental decoding cost one token per step."""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer keys and values, written in place into buffers that grow geometrically.

    Concatenating the cache on every step copies all of it each time (quadratic in the
    generated length); writing into a preallocated buffer copies only the new token. When the
    final length is known (`max_length`, as `generate` knows it) the buffer is allocated
    once.
    """

    def __init__(self, num_layers: int, max_length: int | None = None) -> None:
        if num_layers <= 0:
            raise ValueError(f"num_layers must be positive, got {num_layers}")
        if max_length is not None and max_length <= 0:
            raise ValueError(f"max_length must be positive, got {max_length}")
        self.num_layers = num_layers
        self.max_length = max_length
        self._keys: list[torch.Tensor | None] = [None] * num_layers
        self._values: list[torch.Tensor | None] = [None] * num_layers
        self._lengths = [0] * num_layers

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """How many positions layer `layer_idx` holds (the past length for the next step)."""
        return self._lengths[layer_idx]

    def update(
        self, layer_idx: int, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append `key`/`value` ([batch, kv_heads, new, head_dim]); return the whole history."""
        if not 0 <= layer_idx < self.num_layers:
            raise IndexError(f"layer {layer_idx} outside a cache of {self.num_layers} layers")
        start = self._lengths[layer_idx]
        end = start + key.shape[2]
        keys, values = self._keys[layer_idx], self._values[layer_idx]
        if keys is not None and (keys.shape[:2] != key.shape[:2] or keys.shape[3] != key.shape[3]):
            raise ValueError(
                f"cache layer {layer_idx} holds {tuple(keys.shape)}, "
                f"cannot append {tuple(key.shape)}"
            )
        if keys is None or values is None or end > keys.shape[2]:
            keys, values = self._grow(layer_idx, key, value, end)
        keys[:, :, start:end] = key
        values[:, :, start:end] = value
        self._lengths[layer_idx] = end
        return keys[:, :, :end], values[:, :, :end]

    def _grow(
        self, layer_idx: int, key: torch.Tensor, value: torch.Tensor, needed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        old_keys, old_values = self._keys[layer_idx], self._values[layer_idx]
        old_capacity = 0 if old_keys is None else old_keys.shape[2]
        if self.max_length is not None and needed <= self.max_length:
            capacity = self.max_length
        else:
            capacity = max(needed, 2 * old_capacity)
        batch, heads, _, head_dim = key.shape
        keys = key.new_empty(batch, heads, capacity, head_dim)
        values = value.new_empty(batch, value.shape[1], capacity, value.shape[3])
        start = self._lengths[layer_idx]
        if old_keys is not None and old_values is not None and start:
            keys[:, :, :start] = old_keys[:, :, :start]
            values[:, :, :start] = old_values[:, :, :start]
        self._keys[layer_idx], self._values[layer_idx] = keys, values
        return keys, values
