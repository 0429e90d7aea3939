"""Tests of `model_lib.testing`: the RUN_SLOW switch and the tiny-config helpers."""

import pytest
import torch

from model_lib.models.gpt2.configuration_gpt2 import GPT2Config
from model_lib.models.llama.configuration_llama import LlamaConfig
from model_lib.models.llama.modeling_llama import LlamaForCausalLM
from model_lib.testing import (
    is_truthy,
    left_pad,
    randomize_weights,
    right_pad,
    run_slow_enabled,
    tiny_config,
)


@pytest.mark.parametrize("value", ["yes", "YES", "true", "True", "1", " yes "])
def test_truthy_values_enable_slow_tests(value: str) -> None:
    assert is_truthy(value)
    assert run_slow_enabled({"RUN_SLOW": value})


@pytest.mark.parametrize("value", [None, "", "0", "no", "false", "on", "y", "2"])
def test_other_values_do_not(value: str | None) -> None:
    assert not is_truthy(value)
    environ = {} if value is None else {"RUN_SLOW": value}
    assert not run_slow_enabled(environ)


def test_tiny_config_maps_canonical_sizes_to_each_architecture() -> None:
    gpt2 = tiny_config(GPT2Config, n_layer=3)
    assert (gpt2.n_embd, gpt2.n_head, gpt2.n_layer, gpt2.n_positions) == (32, 4, 3, 64)
    llama = tiny_config(LlamaConfig)
    assert (llama.hidden_size, llama.num_key_value_heads, llama.intermediate_size) == (32, 2, 37)


def test_padding_helpers() -> None:
    ids, mask = left_pad([[5, 6, 7], [8]], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = right_pad([[5, 6, 7], [8]], pad_token_id=9)
    assert ids.tolist() == [[5, 6, 7], [8, 9, 9]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="non-empty"):
        left_pad([[1], []], pad_token_id=0)


def test_randomize_weights_is_reproducible_and_keeps_norms_near_one() -> None:
    config = tiny_config(LlamaConfig)
    first = randomize_weights(LlamaForCausalLM(config), seed=3, std=0.1)
    second = randomize_weights(LlamaForCausalLM(config), seed=3, std=0.1)
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    norm = first.model.norm.weight
    assert 0.5 < norm.mean().item() < 1.5
    assert abs(first.lm_head.weight.mean().item()) < 0.05
