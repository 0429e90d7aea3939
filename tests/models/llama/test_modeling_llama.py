"""Tests of the Llama model: fast checks on a tiny config, slow numeric and GPU checks."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from model_lib.configuration_utils import ConfigError
from model_lib.modeling_utils import CheckpointError
from model_lib.models.llama.configuration_llama import LlamaConfig
from model_lib.models.llama.modeling_llama import (
    LlamaForCausalLM,
    LlamaModel,
    rope_inverse_frequencies,
)
from model_lib.testing import (
    check_batched_generation_matches_single,
    check_cache_matches_full_forward,
    check_causal_masking,
    check_decoder_generation_on_device,
    check_generate_cache_equals_no_cache,
    check_generate_stops_on_eos,
    check_padding_invariance,
    check_precision_against_cpu_float32,
    check_save_load_round_trip,
    check_tokens_near_argmax,
    hf_class_or_skip,
    ids_tensor,
    max_abs_diff,
    randomize_weights,
    require_torch_gpu,
    slow,
    tiny_config,
)

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}


def make_config(**overrides) -> LlamaConfig:
    return tiny_config(LlamaConfig, **overrides)


def make_model(**overrides) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(make_config(**overrides)).eval()


# ----- configuration ---------------------------------------------------------------------


def test_config_defaults_resolve_heads() -> None:
    config = LlamaConfig.from_dict({"model_type": "llama", "hidden_size": 64})
    assert config.num_key_value_heads == config.num_attention_heads == 32
    assert config.head_dim == 2
    assert LlamaConfig.from_dict(config.to_dict()) == config


def test_config_upgrades_legacy_rope_fields() -> None:
    config = LlamaConfig.from_dict(
        {
            "model_type": "llama",
            "rope_theta": 500000.0,
            "rope_scaling": {"type": "linear", "factor": 2.0},
            "torch_dtype": "bfloat16",
        }
    )
    assert config.rope_parameters == {"rope_type": "linear", "rope_theta": 500000.0, "factor": 2.0}
    assert config.dtype == "bfloat16"
    assert "rope_theta" not in config.to_dict()


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="num_attention_heads=4 is not divisible by"):
        make_config(num_key_value_heads=3)
    with pytest.raises(ConfigError, match="rope_type 'yarn' is not supported"):
        make_config(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4, "factor": 2.0})
    with pytest.raises(ConfigError, match="needs 'low_freq_factor'"):
        make_config(rope_parameters={"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0})
    with pytest.raises(ConfigError, match="head_dim must be even"):
        make_config(head_dim=7)


def test_llama3_rope_keeps_fast_and_slows_slow_frequencies() -> None:
    rope = {**LLAMA3_ROPE, "original_max_position_embeddings": 64}
    plain = rope_inverse_frequencies(make_config(rope_parameters={**rope, "factor": 1.0}))
    scaled = rope_inverse_frequencies(make_config(rope_parameters=rope))
    assert scaled[0] == plain[0]  # wavelength 2*pi < 64/4: the fastest rotation is kept
    assert torch.allclose(scaled[-1], plain[-1] / 8.0)  # the slowest is divided by `factor`
    assert bool((scaled <= plain).all())


# ----- forward ---------------------------------------------------------------------------


def test_forward_shapes() -> None:
    model = make_model()
    ids = ids_tensor((3, 7), 99)
    assert model(ids).logits.shape == (3, 7, 99)
    assert model(ids, num_logits_to_keep=2).logits.shape == (3, 2, 99)
    assert model.model(ids).last_hidden_state.shape == (3, 7, 32)


def test_grouped_query_attention_shrinks_the_cache() -> None:
    model = make_model()
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (16, 32)  # 2 KV heads x 8
    out = model(ids_tensor((2, 5), 99), use_cache=True)
    keys, _ = out.past_key_values.update(
        0, torch.zeros(2, 2, 1, 8), torch.zeros(2, 2, 1, 8)
    )  # [B, K, P+1, D]
    assert keys.shape == (2, 2, 6, 8)


def test_explicit_head_dim() -> None:
    model = make_model(head_dim=16)
    assert model.model.layers[0].self_attn.q_proj.weight.shape == (64, 32)
    check_cache_matches_full_forward(model)


def test_loss_and_gradients() -> None:
    model = make_model()
    ids = ids_tensor((2, 6), 99)
    labels = ids.clone()
    labels[:, :3] = -100
    out = model(ids, labels=labels)
    expected = torch.nn.functional.cross_entropy(
        out.logits[:, 2:-1].reshape(-1, 99), ids[:, 3:].reshape(-1)
    )
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    assert model.model.layers[0].mlp.gate_proj.weight.grad is not None


def test_causal_masking() -> None:
    check_causal_masking(make_model())


def test_left_padding_invariance() -> None:
    check_padding_invariance(make_model(), side="left")


@pytest.mark.parametrize("rope", [None, LLAMA3_ROPE], ids=["default-rope", "llama3-rope"])
def test_kv_cache_matches_full_forward(rope: dict | None) -> None:
    model = make_model(rope_parameters=rope) if rope else make_model()
    check_cache_matches_full_forward(model)


def test_determinism() -> None:
    ids = ids_tensor((2, 5), 99)
    with torch.no_grad():
        assert torch.equal(make_model()(ids).logits, make_model()(ids).logits)


# ----- generation ------------------------------------------------------------------------


def test_generate_greedy_cache_equals_no_cache() -> None:
    check_generate_cache_equals_no_cache(make_model())


def test_generate_sampling_cache_equals_no_cache() -> None:
    check_generate_cache_equals_no_cache(
        make_model(), do_sample=True, temperature=0.7, top_k=30, top_p=0.95
    )


def test_generate_batched_left_padding_matches_single_rows() -> None:
    check_batched_generation_matches_single(make_model())


def test_generate_stops_on_eos() -> None:
    check_generate_stops_on_eos(make_model())


def test_generate_with_eos_list_from_config() -> None:
    model = make_model()
    ids = ids_tensor((1, 4), 99)
    free = model.generate(ids, max_new_tokens=5, eos_token_id=())
    model.config.eos_token_id = [98, int(free[0, 4])]
    stopped = model.generate(ids, max_new_tokens=5)
    assert stopped.tolist() == free[:, :5].tolist()


def test_sampling_with_tiny_top_p_is_greedy() -> None:
    model = make_model()
    ids = ids_tensor((2, 4), 99)
    greedy = model.generate(ids, max_new_tokens=5, eos_token_id=())
    sampled = model.generate(ids, max_new_tokens=5, eos_token_id=(), do_sample=True, top_p=1e-6)
    assert torch.equal(greedy, sampled)


# ----- checkpoints -----------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    check_save_load_round_trip(make_model(), tmp_path)


def test_checkpoint_uses_hugging_face_keys(tmp_path: Path) -> None:
    make_model().save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    assert tensors["model.layers.0.self_attn.q_proj.weight"].shape == (32, 32)
    assert tensors["model.layers.1.mlp.down_proj.weight"].shape == (32, 37)
    assert "lm_head.weight" in tensors  # Llama does not tie by default
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["rope_parameters"] == {"rope_type": "default", "rope_theta": 10000.0}


def test_tied_embeddings_round_trip(tmp_path: Path) -> None:
    model = make_model(tie_word_embeddings=True)
    check_save_load_round_trip(model, tmp_path)
    assert "lm_head.weight" not in load_file(tmp_path / "model.safetensors")


def test_base_model_loads_from_causal_lm_checkpoint(tmp_path: Path) -> None:
    head = make_model()
    head.save_pretrained(tmp_path)
    base = LlamaModel.from_pretrained(tmp_path)
    ids = ids_tensor((2, 5), 99)
    with torch.no_grad():
        assert torch.equal(base(ids).last_hidden_state, head.model(ids).last_hidden_state)


def test_legacy_rotary_buffers_are_accepted(tmp_path: Path) -> None:
    model = make_model()
    model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    tensors = load_file(path)
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(4)
    save_file(tensors, path)
    LlamaForCausalLM.from_pretrained(tmp_path)


def test_loading_errors_name_the_key(tmp_path: Path) -> None:
    model = make_model()
    model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    good = load_file(path)
    save_file({k: v for k, v in good.items() if k != "lm_head.weight"}, path)
    with pytest.raises(CheckpointError, match=r"keys missing .*'lm_head\.weight'"):
        LlamaForCausalLM.from_pretrained(tmp_path)
    save_file({**good, "model.layers.0.self_attn.k_proj.weight": torch.zeros(32, 32)}, path)
    with pytest.raises(CheckpointError, match=r"shape mismatch .*k_proj\.weight.*\(16, 32\)"):
        LlamaForCausalLM.from_pretrained(tmp_path)
    save_file({**good, "model.extra.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"unknown keys .*'model\.extra\.weight'"):
        LlamaForCausalLM.from_pretrained(tmp_path)


def test_sharded_checkpoint_loads(tmp_path: Path) -> None:
    model = make_model()
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors").unlink()
    keys = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": keys[::2],
        "model-00002-of-00002.safetensors": keys[1::2],
    }
    for name, names in shards.items():
        save_file({k: tensors[k] for k in names}, tmp_path / name)
    weight_map = {k: name for name, names in shards.items() for k in names}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    reloaded = LlamaForCausalLM.from_pretrained(tmp_path)
    ids = ids_tensor((1, 6), 99)
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="names shard model-00002-of-00002"):
        LlamaForCausalLM.from_pretrained(tmp_path)


# ----- against the Hugging Face implementation (skipped when it is not installed) --------


@pytest.mark.parametrize("rope", [None, LLAMA3_ROPE], ids=["default-rope", "llama3-rope"])
def test_matches_hugging_face_both_ways(tmp_path: Path, rope: dict | None) -> None:
    hf_model_class = hf_class_or_skip("LlamaForCausalLM")
    hf_config_class = hf_class_or_skip("LlamaConfig")
    sizes = make_config().to_dict()
    for field in ("architectures", "dtype", "extra", "rope_parameters"):
        sizes.pop(field, None)
    if rope:
        sizes["rope_parameters"] = rope
    torch.manual_seed(0)
    hf_model = hf_model_class(hf_config_class(**sizes)).eval()
    hf_model.save_pretrained(tmp_path / "theirs")
    ours = LlamaForCausalLM.from_pretrained(tmp_path / "theirs")
    ids = ids_tensor((2, 40), 99)
    with torch.no_grad():
        assert max_abs_diff(ours(ids).logits, hf_model(ids).logits) < 1e-4
    ours.save_pretrained(tmp_path / "ours")
    theirs = hf_model_class.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        assert max_abs_diff(theirs(ids).logits, ours(ids).logits) < 1e-4
    expected = hf_model.generate(
        ids, max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=None
    )
    assert torch.equal(ours.generate(ids, max_new_tokens=8, eos_token_id=()), expected)


# ----- slow: a bigger model against recorded reference values, other dtypes, GPU ---------

REFERENCE_CONFIG = {
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
    "max_position_embeddings": 512,
    "rope_parameters": {**LLAMA3_ROPE, "original_max_position_embeddings": 64},
}
REFERENCE_SEED = 2
REFERENCE_STD = 0.08

EXPECTED_LOGITS_ROW0 = [  # logits[0, :3, :5]
    [-0.29904, -1.37487, 0.76687, 0.15313, -0.12139],
    [0.03938, -0.15553, 0.4943, 1.35536, 0.84],
    [0.62765, 1.84701, 1.62873, 3.57539, -0.25012],
]
EXPECTED_LOGITS_LAST = [-2.97994, 0.97357, -0.61798, -0.04836, 0.90037]  # logits[1, -1, :5]
EXPECTED_GREEDY = [  # generate(max_new_tokens=10, do_sample=False)[:, 16:]
    [915, 527, 926, 725, 978, 669, 584, 108, 259, 686],
    [748, 915, 276, 266, 483, 134, 706, 357, 832, 969],
]


def reference_model() -> LlamaForCausalLM:
    config = LlamaConfig.from_dict({"model_type": "llama", **REFERENCE_CONFIG})
    return randomize_weights(LlamaForCausalLM(config), REFERENCE_SEED, REFERENCE_STD).eval()


def reference_ids() -> torch.Tensor:
    return ids_tensor((2, 16), REFERENCE_CONFIG["vocab_size"], seed=98)


@slow
def test_reference_logits_and_greedy_tokens() -> None:
    """Outputs equal values recorded from an independent implementation.

    Recorded with Hugging Face transformers 5.23.0 (torch 2.13.0, CPU, float32, its default
    sdpa attention): `reference_model().save_pretrained(d)`, then
    `transformers.LlamaForCausalLM.from_pretrained(d)` run on `reference_ids()` for the
    logits, and its `generate(ids, max_new_tokens=10, do_sample=False)` for the tokens.
    """
    model = reference_model()
    ids = reference_ids()
    with torch.no_grad():
        logits = model(ids).logits
    assert max_abs_diff(logits[0, :3, :5], torch.tensor(EXPECTED_LOGITS_ROW0)) < 1e-4
    assert max_abs_diff(logits[1, -1, :5], torch.tensor(EXPECTED_LOGITS_LAST)) < 1e-4
    greedy = model.generate(ids, max_new_tokens=10, eos_token_id=())
    assert greedy[:, 16:].tolist() == EXPECTED_GREEDY


@slow
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_on_cpu_tracks_float32(dtype: torch.dtype) -> None:
    reference, model = check_precision_against_cpu_float32(
        reference_model, {"input_ids": reference_ids()}, device="cpu", dtype=dtype, tolerance=0.1
    )
    tokens = model.generate(reference_ids(), max_new_tokens=6, eos_token_id=())
    check_tokens_near_argmax(reference, tokens, start=16)


@slow
@require_torch_gpu
@pytest.mark.parametrize(
    ("dtype", "tolerance"), [(torch.float32, 1e-4), (torch.float16, 0.05), (torch.bfloat16, 0.05)]
)
def test_gpu_forward_and_generate_track_cpu_float32(dtype: torch.dtype, tolerance: float) -> None:
    reference, model = check_precision_against_cpu_float32(
        reference_model,
        {"input_ids": reference_ids()},
        device="cuda",
        dtype=dtype,
        tolerance=tolerance,
    )
    check_decoder_generation_on_device(reference, model, reference_ids())
