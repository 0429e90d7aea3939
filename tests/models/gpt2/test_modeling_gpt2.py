"""Tests of the GPT-2 model: fast checks on a tiny config, slow numeric and GPU checks."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from model_lib.configuration_utils import ConfigError
from model_lib.modeling_utils import CheckpointError
from model_lib.models.gpt2.configuration_gpt2 import GPT2Config
from model_lib.models.gpt2.modeling_gpt2 import GPT2LMHeadModel, GPT2Model
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


def make_config(**overrides) -> GPT2Config:
    return tiny_config(GPT2Config, **overrides)


def make_model(**overrides) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(make_config(**overrides)).eval()


# ----- configuration ---------------------------------------------------------------------


def test_config_reads_aliases_and_keeps_unknown_fields() -> None:
    config = GPT2Config.from_dict(
        {"model_type": "gpt2", "hidden_size": 64, "n_head": 8, "summary_type": "cls_index"}
    )
    assert config.n_embd == 64
    assert config.hidden_size == 64
    assert config.num_attention_heads == 8
    assert config.to_dict()["summary_type"] == "cls_index"
    assert GPT2Config.from_dict(config.to_dict()) == config


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="n_embd=30 is not divisible by n_head=4"):
        make_config(n_embd=30)
    with pytest.raises(ConfigError, match="activation_function 'mish'"):
        make_config(activation_function="mish")
    with pytest.raises(ConfigError, match="model_type 'gpt2'"):
        GPT2Config.from_dict({"model_type": "llama"})


# ----- forward ---------------------------------------------------------------------------


def test_forward_shapes() -> None:
    model = make_model()
    ids = ids_tensor((3, 7), 99)
    out = model(ids)
    assert out.logits.shape == (3, 7, 99)
    assert out.past_key_values is None
    assert model(ids, num_logits_to_keep=1).logits.shape == (3, 1, 99)
    hidden = model.transformer(ids).last_hidden_state
    assert hidden.shape == (3, 7, 32)


def test_loss_is_next_token_cross_entropy() -> None:
    model = make_model()
    ids = ids_tensor((2, 6), 99)
    out = model(ids, labels=ids)
    expected = torch.nn.functional.cross_entropy(
        out.logits[:, :-1].reshape(-1, 99), ids[:, 1:].reshape(-1)
    )
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    assert model.transformer.wte.weight.grad is not None


def test_rejects_bad_inputs() -> None:
    model = make_model()
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 99\)"):
        model(torch.tensor([[1, 99]]))
    with pytest.raises(ValueError, match="exceeds n_positions=64"):
        model(ids_tensor((1, 65), 99))
    with pytest.raises(ValueError, match="attention_mask must be"):
        model(ids_tensor((1, 5), 99), attention_mask=torch.ones(1, 4, dtype=torch.long))


def test_causal_masking() -> None:
    check_causal_masking(make_model())


def test_left_padding_invariance() -> None:
    check_padding_invariance(make_model(), side="left")


def test_kv_cache_matches_full_forward() -> None:
    check_cache_matches_full_forward(make_model())


def test_determinism() -> None:
    ids = ids_tensor((2, 5), 99)
    with torch.no_grad():
        assert torch.equal(make_model()(ids).logits, make_model()(ids).logits)


def test_dropout_is_active_only_in_training() -> None:
    model = make_model(resid_pdrop=0.5)
    ids = ids_tensor((1, 8), 99)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, model(ids).logits)
        model.train()
        assert not torch.equal(model(ids).logits, model(ids).logits)


def test_scale_attn_by_inverse_layer_idx_changes_outputs() -> None:
    ids = ids_tensor((1, 8), 99)
    with torch.no_grad():
        plain = make_model()(ids).logits
        scaled = make_model(scale_attn_by_inverse_layer_idx=True)(ids).logits
    assert not torch.allclose(plain, scaled)


# ----- generation ------------------------------------------------------------------------


def test_generate_greedy_cache_equals_no_cache() -> None:
    check_generate_cache_equals_no_cache(make_model())


def test_generate_sampling_cache_equals_no_cache() -> None:
    check_generate_cache_equals_no_cache(make_model(), do_sample=True, top_k=20, top_p=0.9)


def test_generate_batched_left_padding_matches_single_rows() -> None:
    check_batched_generation_matches_single(make_model())


def test_generate_stops_on_eos() -> None:
    check_generate_stops_on_eos(make_model())


def test_sampling_with_top_k_1_is_greedy() -> None:
    model = make_model()
    ids = ids_tensor((2, 4), 99)
    greedy = model.generate(ids, max_new_tokens=5, eos_token_id=())
    sampled = model.generate(ids, max_new_tokens=5, eos_token_id=(), do_sample=True, top_k=1)
    assert torch.equal(greedy, sampled)


def test_sampling_is_reproducible_with_a_generator() -> None:
    model = make_model()
    ids = ids_tensor((2, 4), 99)

    def sample(seed: int) -> torch.Tensor:
        return model.generate(
            ids,
            max_new_tokens=8,
            eos_token_id=(),
            do_sample=True,
            temperature=1.5,
            generator=torch.Generator().manual_seed(seed),
        )

    assert torch.equal(sample(1), sample(1))
    assert not torch.equal(sample(1), sample(2))


def test_generate_rejects_bad_arguments() -> None:
    model = make_model()
    ids = ids_tensor((2, 4), 99)
    with pytest.raises(ValueError, match="exceeds the model's 64 positions"):
        model.generate(ids, max_new_tokens=61)
    with pytest.raises(ValueError, match="left-padded"):
        model.generate(ids, attention_mask=torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]))
    with pytest.raises(ValueError, match="only with do_sample=True"):
        model.generate(ids, top_k=5)
    with pytest.raises(ValueError, match="top_p must be in"):
        model.generate(ids, do_sample=True, top_p=0.0)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0"):
        model.generate(ids, max_new_tokens=-1)
    assert torch.equal(model.generate(ids, max_new_tokens=0), ids)


# ----- checkpoints -----------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    check_save_load_round_trip(make_model(), tmp_path)


def test_checkpoint_uses_hugging_face_keys_and_omits_tied_head(tmp_path: Path) -> None:
    make_model().save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    assert "lm_head.weight" not in tensors
    assert tensors["transformer.h.0.attn.c_attn.weight"].shape == (32, 96)  # Conv1D [in, out]
    assert tensors["transformer.wpe.weight"].shape == (64, 32)
    assert "transformer.ln_f.bias" in tensors


def test_untied_head_is_saved_and_loaded(tmp_path: Path) -> None:
    model = make_model(tie_word_embeddings=False)
    assert model.lm_head.weight is not model.transformer.wte.weight
    reloaded = check_save_load_round_trip(model, tmp_path)
    assert "lm_head.weight" in load_file(tmp_path / "model.safetensors")
    assert torch.equal(reloaded.lm_head.weight, model.lm_head.weight)


def test_tied_head_shares_storage_after_loading(tmp_path: Path) -> None:
    make_model().save_pretrained(tmp_path)
    reloaded = GPT2LMHeadModel.from_pretrained(tmp_path)
    assert reloaded.lm_head.weight is reloaded.transformer.wte.weight


def test_base_and_head_checkpoints_load_into_each_other(tmp_path: Path) -> None:
    head = make_model()
    head.save_pretrained(tmp_path / "head")
    base = GPT2Model.from_pretrained(tmp_path / "head")
    ids = ids_tensor((2, 5), 99)
    with torch.no_grad():
        expected = head.transformer(ids).last_hidden_state
        assert torch.equal(base(ids).last_hidden_state, expected)
        base.save_pretrained(tmp_path / "base")
        assert "h.0.ln_1.weight" in load_file(tmp_path / "base" / "model.safetensors")
        head_again = GPT2LMHeadModel.from_pretrained(tmp_path / "base")
        assert torch.equal(head_again(ids).logits, head(ids).logits)


def test_legacy_buffers_in_old_checkpoints_are_accepted(tmp_path: Path) -> None:
    model = make_model()
    model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    tensors = load_file(path)
    old_style = {key.removeprefix("transformer."): value for key, value in tensors.items()}
    old_style["h.0.attn.bias"] = torch.ones(1, 1, 64, 64).tril()
    old_style["h.0.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(old_style, path)
    reloaded = GPT2LMHeadModel.from_pretrained(tmp_path)
    ids = ids_tensor((1, 5), 99)
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)


def test_loading_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        GPT2LMHeadModel.from_pretrained(tmp_path)
    model = make_model()
    model.config.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors"):
        GPT2LMHeadModel.from_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    good = load_file(path)

    save_file({**good, "transformer.h.0.attn.c_attn.scale": torch.ones(1)}, path)
    unknown = r"unknown keys .*'transformer\.h\.0\.attn\.c_attn\.scale'"
    with pytest.raises(CheckpointError, match=unknown):
        GPT2LMHeadModel.from_pretrained(tmp_path)

    save_file({k: v for k, v in good.items() if k != "transformer.ln_f.bias"}, path)
    with pytest.raises(CheckpointError, match=r"keys missing .*'transformer\.ln_f\.bias'"):
        GPT2LMHeadModel.from_pretrained(tmp_path)

    save_file({**good, "transformer.wpe.weight": torch.zeros(32, 32)}, path)
    with pytest.raises(CheckpointError, match=r"shape mismatch for 'transformer\.wpe\.weight'"):
        GPT2LMHeadModel.from_pretrained(tmp_path)

    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read safetensors"):
        GPT2LMHeadModel.from_pretrained(tmp_path)


def test_loads_in_the_requested_dtype(tmp_path: Path) -> None:
    make_model().save_pretrained(tmp_path)
    model = GPT2LMHeadModel.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    assert GPT2LMHeadModel.from_pretrained(tmp_path, dtype="auto").dtype == torch.float32
    with pytest.raises(ValueError, match="unknown dtype"):
        GPT2LMHeadModel.from_pretrained(tmp_path, dtype="float8")


# ----- against the Hugging Face implementation (skipped when it is not installed) --------


def test_matches_hugging_face_both_ways(tmp_path: Path) -> None:
    hf_model_class = hf_class_or_skip("GPT2LMHeadModel")
    hf_config_class = hf_class_or_skip("GPT2Config")
    torch.manual_seed(0)
    hf_config = hf_config_class(n_embd=32, n_layer=2, n_head=4, vocab_size=99, n_positions=64)
    hf_model = hf_model_class(hf_config).eval()
    hf_model.save_pretrained(tmp_path / "theirs")
    ours = GPT2LMHeadModel.from_pretrained(tmp_path / "theirs")
    ids = ids_tensor((2, 12), 99)
    with torch.no_grad():
        assert max_abs_diff(ours(ids).logits, hf_model(ids).logits) < 1e-4
    ours.save_pretrained(tmp_path / "ours")
    theirs = hf_model_class.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        assert max_abs_diff(theirs(ids).logits, ours(ids).logits) < 1e-4
    expected = hf_model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(ids, max_new_tokens=8, eos_token_id=()), expected)


# ----- slow: a bigger model against recorded reference values, other dtypes, GPU ---------

REFERENCE_CONFIG = {
    "n_embd": 256,
    "n_layer": 4,
    "n_head": 8,
    "vocab_size": 1000,
    "n_positions": 256,
}
REFERENCE_SEED = 2
REFERENCE_STD = 0.08


def reference_model() -> GPT2LMHeadModel:
    config = GPT2Config.from_dict({"model_type": "gpt2", **REFERENCE_CONFIG})
    return randomize_weights(GPT2LMHeadModel(config), REFERENCE_SEED, REFERENCE_STD).eval()


def reference_ids() -> torch.Tensor:
    return ids_tensor((2, 16), REFERENCE_CONFIG["vocab_size"], seed=99)


EXPECTED_LOGITS_ROW0 = [  # logits[0, :3, :5]
    [1.09072, 2.17411, -1.1402, 1.54528, -0.9745],
    [-0.0696, 0.83722, -0.53375, -0.56741, -0.43305],
    [-0.07902, 1.67316, -0.92725, 0.05766, -1.67908],
]
EXPECTED_LOGITS_LAST = [-0.26888, 0.80301, -0.00589, -0.03141, 0.45205]  # logits[1, -1, :5]
EXPECTED_GREEDY = [  # generate(max_new_tokens=10, do_sample=False)[:, 16:]
    [446, 39, 446, 883, 913, 446, 446, 446, 446, 989],
    [39, 1, 566, 948, 948, 948, 546, 263, 821, 446],
]


@slow
def test_reference_logits_and_greedy_tokens() -> None:
    """Outputs equal values recorded from an independent implementation.

    Recorded with Hugging Face transformers 5.23.0 (torch 2.13.0, CPU, float32, its default
    sdpa attention): `reference_model().save_pretrained(d)`, then
    `transformers.GPT2LMHeadModel.from_pretrained(d)` run on `reference_ids()` for the
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
