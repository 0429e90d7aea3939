"""Tests of the shared decoding pieces: token selection, the KV cache and SDPA masks."""

import pytest
import torch

from model_lib.cache import KVCache
from model_lib.generation import select_next_tokens
from model_lib.masking import attention_mask_for_sdpa, position_ids_from_mask


def _draws(logits: list[float], n: int = 400, **sampling) -> set[int]:
    batch = torch.tensor([logits]).expand(n, -1)
    generator = torch.Generator().manual_seed(0)
    tokens = select_next_tokens(batch, do_sample=True, generator=generator, **sampling)
    return set(tokens.tolist())


def test_greedy_takes_the_argmax() -> None:
    logits = torch.tensor([[0.1, 3.0, 0.2], [5.0, 1.0, 0.0]])
    assert select_next_tokens(logits, do_sample=False).tolist() == [1, 0]


def test_top_k_keeps_only_the_k_best() -> None:
    assert _draws([0.0, 1.0, 1.1, 1.2, 0.5], top_k=2) == {2, 3}


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log().tolist()
    assert _draws(logits, top_p=0.7) == {0, 1}
    assert _draws(logits, top_p=0.5) == {0}
    assert _draws(logits, top_p=1.0) == {0, 1, 2, 3}


def test_low_temperature_concentrates_on_the_best() -> None:
    assert _draws([1.0, 1.5, 0.0], temperature=0.01) == {1}
    assert _draws([1.0, 1.5, 0.0], temperature=5.0) == {0, 1, 2}


def test_cache_grows_and_keeps_history() -> None:
    cache = KVCache(num_layers=2)
    first = torch.randn(1, 2, 3, 4)
    keys, values = cache.update(0, first, first + 1)
    assert keys.shape == (1, 2, 3, 4)
    for _ in range(5):
        step = torch.randn(1, 2, 1, 4)
        keys, values = cache.update(0, step, step + 1)
        assert torch.equal(keys[:, :, -1:], step)
    assert cache.get_seq_length() == 8
    assert cache.get_seq_length(1) == 0
    assert torch.equal(keys[:, :, :3], first)
    assert torch.equal(values, keys + 1)


def test_cache_preallocates_to_max_length() -> None:
    cache = KVCache(num_layers=1, max_length=10)
    keys, _ = cache.update(0, torch.ones(1, 1, 4, 2), torch.ones(1, 1, 4, 2))
    assert keys.shape[2] == 4
    assert cache._keys[0].shape[2] == 10


def test_cache_rejects_mismatched_updates() -> None:
    cache = KVCache(num_layers=1)
    cache.update(0, torch.zeros(2, 2, 1, 4), torch.zeros(2, 2, 1, 4))
    with pytest.raises(ValueError, match="cannot append"):
        cache.update(0, torch.zeros(3, 2, 1, 4), torch.zeros(3, 2, 1, 4))
    with pytest.raises(IndexError):
        cache.update(1, torch.zeros(2, 2, 1, 4), torch.zeros(2, 2, 1, 4))
    with pytest.raises(ValueError, match="num_layers must be positive"):
        KVCache(num_layers=0)


def test_sdpa_mask_is_skipped_when_not_needed() -> None:
    cpu = torch.device("cpu")
    ones = torch.ones(2, 5, dtype=torch.long)
    common = {"device": cpu, "causal": True}
    assert attention_mask_for_sdpa(None, query_length=5, past_length=0, **common) == (None, True)
    assert attention_mask_for_sdpa(ones, query_length=1, past_length=4, **common) == (None, False)
    mask, is_causal = attention_mask_for_sdpa(None, query_length=2, past_length=3, **common)
    assert not is_causal
    assert mask.tolist() == [[[[True, True, True, True, False], [True] * 5]]]


def test_sdpa_mask_with_left_padding_never_leaves_a_row_empty() -> None:
    padding = torch.tensor([[0, 0, 1, 1]])
    mask, _ = attention_mask_for_sdpa(
        padding, query_length=4, past_length=0, causal=True, device=torch.device("cpu")
    )
    assert mask.shape == (1, 1, 4, 4)
    assert mask[0, 0].tolist() == [
        [True, False, False, False],  # a padding query sees only itself
        [False, True, False, False],
        [False, False, True, False],
        [False, False, True, True],
    ]
    with pytest.raises(ValueError, match=r"attention_mask must be \[batch, 4\]"):
        attention_mask_for_sdpa(
            padding[:, 1:], query_length=4, past_length=0, causal=True, device=torch.device("cpu")
        )


def test_position_ids_skip_padding() -> None:
    padding = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    positions = position_ids_from_mask(
        padding, query_length=2, past_length=3, batch_size=2, device=torch.device("cpu")
    )
    assert positions.tolist() == [[1, 2], [3, 4]]
