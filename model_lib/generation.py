"""Text generation for the decoder models: greedy or sampled, with a KV cache.

The loop is shared by every causal LM here. A model takes part by being a `PreTrainedModel`
whose forward accepts `attention_mask`, `past_key_values`, `use_cache` and
`num_logits_to_keep` and returns an object with `logits`, and by saying how many layers its
cache needs (`num_cache_layers`) and, for learned positions, how long a sequence can get
(`max_sequence_length`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from model_lib.cache import KVCache
from model_lib.configuration_utils import normalize_token_ids


class _CausalLM(Protocol):
    config: Any

    def __call__(self, input_ids: torch.Tensor, **kwargs: Any) -> Any: ...

    def num_cache_layers(self) -> int: ...

    def max_sequence_length(self) -> int | None: ...


def select_next_tokens(
    logits: torch.Tensor,
    *,
    do_sample: bool,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row of `logits` ([batch, vocab]) and return them as [batch]."""
    if not do_sample:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth_best = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # [batch, 1]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(dim=-1)
        # Keep the smallest prefix whose mass reaches top_p: a token is dropped when the
        # tokens ranked before it already hold top_p. The best token is always kept.
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        drop_sorted = mass_before >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)


def _check_sampling_arguments(
    do_sample: bool, temperature: float, top_k: int | None, top_p: float | None
) -> None:
    if not do_sample:
        if temperature != 1.0 or top_k is not None or top_p is not None:
            raise ValueError("temperature, top_k and top_p apply only with do_sample=True")
        return
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


class GenerationMixin:
    """Adds `generate()` to a causal LM."""

    def num_cache_layers(self) -> int:
        raise NotImplementedError

    def max_sequence_length(self) -> int | None:
        """The longest sequence the model can embed; None when positions are unbounded."""
        return None

    @torch.no_grad()
    def generate(
        self: _CausalLM,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue each row of `input_ids` ([batch, prompt]); return [batch, prompt + new].

        Batches of different lengths are left-padded, with `attention_mask` marking the
        padding. A row stops at its first EOS (`eos_token_id`, default the config's; pass
        `()` to never stop early) and is filled with `pad_token_id` (default the config's,
        else the first EOS id) while the others go on; the loop ends when every row has
        stopped or after `max_new_tokens`. `use_cache=False` recomputes the whole sequence
        each step, which is slow and exists to check the cache. `generator` makes sampling
        reproducible and must live on the model's device.
        """
        if input_ids.dim() != 2 or input_ids.shape[1] == 0:
            raise ValueError(f"input_ids must be [batch, prompt>0], got {tuple(input_ids.shape)}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise ValueError(f"max_new_tokens must be an integer, got {max_new_tokens!r}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        _check_sampling_arguments(do_sample, temperature, top_k, top_p)
        eos_ids = normalize_token_ids(
            self.config.eos_token_id if eos_token_id is None else eos_token_id
        )
        if pad_token_id is None:
            pad_token_id = self.config.pad_token_id
        if pad_token_id is None and eos_ids:
            pad_token_id = eos_ids[0]
        batch, prompt_length = input_ids.shape
        total_length = prompt_length + max_new_tokens
        limit = self.max_sequence_length()
        if limit is not None and total_length > limit:
            raise ValueError(
                f"prompt ({prompt_length}) + max_new_tokens ({max_new_tokens}) = "
                f"{total_length} exceeds the model's {limit} positions"
            )
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"attention_mask {tuple(attention_mask.shape)} does not match "
                    f"input_ids {tuple(input_ids.shape)}"
                )
            if not bool(attention_mask[:, -1].all()):
                raise ValueError(
                    "a row of attention_mask ends in padding: decoder prompts must be "
                    "left-padded so every row continues from its last real token"
                )
        if max_new_tokens == 0:
            return input_ids

        device = input_ids.device
        eos_tensor = torch.tensor(eos_ids, device=device, dtype=input_ids.dtype)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        cache = KVCache(self.num_cache_layers(), max_length=total_length) if use_cache else None
        sequences = input_ids
        step_input = input_ids
        for _ in range(max_new_tokens):
            output = self(
                sequences if cache is None else step_input,
                attention_mask=attention_mask,
                past_key_values=cache,
                use_cache=cache is not None,
                num_logits_to_keep=1,
            )
            next_tokens = select_next_tokens(
                output.logits[:, -1, :],  # [batch, vocab]
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
            if eos_ids:
                next_tokens = next_tokens.masked_fill(finished, pad_token_id)
                finished = finished | torch.isin(next_tokens, eos_tensor)
            step_input = next_tokens[:, None]  # [batch, 1]
            sequences = torch.cat([sequences, step_input], dim=1)
            if attention_mask is not None:
                attention_mask = torch.cat(
                    [attention_mask, attention_mask.new_ones(batch, 1)], dim=1
                )
            if eos_ids and bool(finished.all()):
                break
        return sequences
