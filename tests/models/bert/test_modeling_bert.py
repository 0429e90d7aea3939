"""Tests of the BERT model: fast checks on a tiny config, slow numeric and GPU checks."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from model_lib.configuration_utils import ConfigError
from model_lib.modeling_utils import CheckpointError
from model_lib.models.bert.configuration_bert import BertConfig
from model_lib.models.bert.modeling_bert import BertForMaskedLM, BertModel
from model_lib.testing import (
    check_padding_invariance,
    check_precision_against_cpu_float32,
    check_save_load_round_trip,
    hf_class_or_skip,
    ids_tensor,
    max_abs_diff,
    randomize_weights,
    require_torch_gpu,
    slow,
    tiny_config,
)


def make_config(**overrides) -> BertConfig:
    return tiny_config(BertConfig, **overrides)


def make_model(**overrides) -> BertForMaskedLM:
    torch.manual_seed(0)
    return BertForMaskedLM(make_config(**overrides)).eval()


def make_base(**overrides) -> BertModel:
    torch.manual_seed(0)
    return BertModel(make_config(**overrides)).eval()


# ----- configuration ---------------------------------------------------------------------


def test_config_round_trip_keeps_unknown_fields() -> None:
    config = BertConfig.from_dict({"model_type": "bert", "gradient_checkpointing": False})
    assert config.extra == {"gradient_checkpointing": False}
    assert BertConfig.from_dict(config.to_dict()) == config


def test_config_rejects_unsupported_variants() -> None:
    with pytest.raises(ConfigError, match="position_embedding_type 'relative_key'"):
        make_config(position_embedding_type="relative_key")
    with pytest.raises(ConfigError, match="decoder use"):
        make_config(is_decoder=True)
    with pytest.raises(ConfigError, match="pad_token_id 120 outside the vocabulary"):
        make_config(pad_token_id=120)


# ----- forward ---------------------------------------------------------------------------


def test_forward_shapes() -> None:
    ids = ids_tensor((3, 7), 99)
    assert make_model()(ids).logits.shape == (3, 7, 99)
    out = make_base()(ids)
    assert out.last_hidden_state.shape == (3, 7, 32)
    assert out.pooler_output.shape == (3, 32)
    assert BertModel(make_config(), add_pooling_layer=False)(ids).pooler_output is None


def test_attention_is_bidirectional() -> None:
    model = make_model()
    ids = ids_tensor((1, 8), 99)
    altered = ids.clone()
    altered[0, -1] = (altered[0, -1] + 1) % 99
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits[:, 0], model(altered).logits[:, 0])


def test_token_types_change_the_output() -> None:
    model = make_model()
    ids = ids_tensor((1, 8), 99)
    second_segment = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    with torch.no_grad():
        plain = model(ids).logits
        segmented = model(ids, token_type_ids=second_segment).logits
    assert torch.allclose(
        plain[:, 0], model(ids, token_type_ids=torch.zeros_like(ids)).logits[:, 0]
    )
    assert not torch.allclose(plain, segmented)
    with pytest.raises(ValueError, match="token_type_ids"):
        model(ids, token_type_ids=second_segment[:, :4])


def test_right_padding_invariance() -> None:
    check_padding_invariance(make_model(), side="right")


def test_masked_lm_loss_counts_only_labelled_positions() -> None:
    model = make_model()
    ids = ids_tensor((2, 6), 99)
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    out = model(ids, labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits[:, 2], ids[:, 2])
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    assert model.cls.predictions.bias.grad is not None


def test_rejects_bad_inputs() -> None:
    model = make_model()
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=64"):
        model(ids_tensor((1, 65), 99))
    with pytest.raises(ValueError, match=r"input_ids must be \[batch, seq\]"):
        model(ids_tensor((5,), 99))


def test_determinism() -> None:
    ids = ids_tensor((2, 5), 99)
    with torch.no_grad():
        assert torch.equal(make_model()(ids).logits, make_model()(ids).logits)


# ----- checkpoints -----------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    check_save_load_round_trip(make_model(), tmp_path)


def test_checkpoint_uses_hugging_face_keys_and_ties(tmp_path: Path) -> None:
    model = make_model()
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    assert "bert.encoder.layer.1.attention.self.query.weight" in tensors
    assert "bert.embeddings.LayerNorm.weight" in tensors
    assert tensors["cls.predictions.bias"].shape == (99,)
    assert "cls.predictions.decoder.weight" not in tensors
    assert "cls.predictions.decoder.bias" not in tensors
    assert not any(key.startswith("bert.pooler") for key in tensors)


def test_untied_decoder_round_trip(tmp_path: Path) -> None:
    model = make_model(tie_word_embeddings=False)
    check_save_load_round_trip(model, tmp_path)
    assert "cls.predictions.decoder.weight" in load_file(tmp_path / "model.safetensors")


def test_base_model_with_pooler_round_trip(tmp_path: Path) -> None:
    base = make_base()
    base.save_pretrained(tmp_path)
    assert "pooler.dense.weight" in load_file(tmp_path / "model.safetensors")
    reloaded = BertModel.from_pretrained(tmp_path)
    ids = ids_tensor((2, 5), 99)
    with torch.no_grad():
        assert torch.equal(reloaded(ids).pooler_output, base(ids).pooler_output)


def test_base_model_from_masked_lm_checkpoint(tmp_path: Path) -> None:
    model = make_model()
    model.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"keys missing .*'pooler\.dense\.weight'"):
        BertModel.from_pretrained(tmp_path)
    base = BertModel.from_pretrained(tmp_path, add_pooling_layer=False)
    ids = ids_tensor((2, 5), 99)
    with torch.no_grad():
        expected = model.bert(ids).last_hidden_state
        assert torch.equal(base(ids).last_hidden_state, expected)


def test_pretraining_checkpoint_with_legacy_names_loads(tmp_path: Path) -> None:
    """The shape of the original BERT release: NSP head, pooler, gamma/beta, position ids."""
    model = make_model()
    model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    legacy = {}
    for key, value in load_file(path).items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma")
        legacy[key.replace("LayerNorm.bias", "LayerNorm.beta")] = value
    legacy["bert.embeddings.position_ids"] = torch.arange(64)[None]
    legacy["bert.pooler.dense.weight"] = torch.zeros(32, 32)
    legacy["bert.pooler.dense.bias"] = torch.zeros(32)
    legacy["cls.seq_relationship.weight"] = torch.zeros(2, 32)
    legacy["cls.seq_relationship.bias"] = torch.zeros(2)
    legacy["cls.predictions.decoder.weight"] = model.bert.embeddings.word_embeddings.weight
    legacy["cls.predictions.decoder.bias"] = model.cls.predictions.bias
    save_file({k: v.detach().clone().contiguous() for k, v in legacy.items()}, path)
    reloaded = BertForMaskedLM.from_pretrained(tmp_path)
    ids = ids_tensor((2, 5), 99)
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)


def test_loading_errors_name_the_key(tmp_path: Path) -> None:
    make_model().save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    good = load_file(path)
    save_file({k: v for k, v in good.items() if k != "cls.predictions.bias"}, path)
    with pytest.raises(CheckpointError, match=r"keys missing .*'cls\.predictions\.bias'"):
        BertForMaskedLM.from_pretrained(tmp_path)
    save_file({**good, "bert.embeddings.token_type_embeddings.weight": torch.zeros(3, 32)}, path)
    with pytest.raises(CheckpointError, match=r"shape mismatch for 'bert\.embeddings\.token_type"):
        BertForMaskedLM.from_pretrained(tmp_path)
    save_file({**good, "cls.predictions.extra": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"unknown keys .*'cls\.predictions\.extra'"):
        BertForMaskedLM.from_pretrained(tmp_path)


# ----- against the Hugging Face implementation (skipped when it is not installed) --------


def test_matches_hugging_face_both_ways(tmp_path: Path) -> None:
    hf_mlm_class = hf_class_or_skip("BertForMaskedLM")
    hf_base_class = hf_class_or_skip("BertModel")
    hf_config_class = hf_class_or_skip("BertConfig")
    sizes = {k: v for k, v in make_config().to_dict().items() if k not in ("extra", "dtype")}
    hf_config = hf_config_class(**sizes)
    ids = ids_tensor((2, 12), 99)
    token_types = (torch.arange(12) >= 6).long().expand(2, -1)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0
    inputs = {"attention_mask": mask, "token_type_ids": token_types}
    real = mask.bool()

    torch.manual_seed(0)
    hf_mlm = hf_mlm_class(hf_config).eval()
    hf_mlm.save_pretrained(tmp_path / "theirs")
    ours = BertForMaskedLM.from_pretrained(tmp_path / "theirs")
    with torch.no_grad():
        assert (
            max_abs_diff(ours(ids, **inputs).logits[real], hf_mlm(ids, **inputs).logits[real])
            < 1e-4
        )
    ours.save_pretrained(tmp_path / "ours")
    theirs = hf_mlm_class.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        assert (
            max_abs_diff(theirs(ids, **inputs).logits[real], ours(ids, **inputs).logits[real])
            < 1e-4
        )

    hf_base = hf_base_class(hf_config).eval()
    hf_base.save_pretrained(tmp_path / "base")
    base = BertModel.from_pretrained(tmp_path / "base")
    with torch.no_grad():
        expected = hf_base(ids, **inputs)
        got = base(ids, **inputs)
    assert max_abs_diff(got.pooler_output, expected.pooler_output) < 1e-4
    assert max_abs_diff(got.last_hidden_state[real], expected.last_hidden_state[real]) < 1e-4


# ----- slow: a bigger model against recorded reference values, other dtypes, GPU ---------

REFERENCE_CONFIG = {
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "vocab_size": 1000,
    "max_position_embeddings": 128,
}
REFERENCE_SEED = 2
REFERENCE_STD = 0.08

EXPECTED_LOGITS_ROW0 = [  # logits[0, :3, :5]
    [2.75925, 3.01826, -0.095, 0.95985, 0.01048],
    [1.79385, 3.30191, -0.26481, 0.98757, -0.11632],
    [2.65651, 3.18976, 0.01828, 1.13377, 0.14691],
]
EXPECTED_LOGITS_LAST = [1.6689, 1.07756, 0.50567, 2.05389, 0.10984]  # logits[1, 9, :5]


def reference_model() -> BertForMaskedLM:
    config = BertConfig.from_dict({"model_type": "bert", **REFERENCE_CONFIG})
    return randomize_weights(BertForMaskedLM(config), REFERENCE_SEED, REFERENCE_STD).eval()


def reference_ids() -> torch.Tensor:
    return ids_tensor((2, 16), REFERENCE_CONFIG["vocab_size"], seed=97)


def reference_mask() -> torch.Tensor:
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0  # row 1: ten tokens, then right padding
    return mask


def reference_token_types() -> torch.Tensor:
    return (torch.arange(16) >= 8).long().expand(2, -1)


def reference_inputs() -> dict[str, torch.Tensor]:
    return {"attention_mask": reference_mask(), "token_type_ids": reference_token_types()}


@slow
def test_reference_logits() -> None:
    """Outputs equal values recorded from an independent implementation.

    Recorded with Hugging Face transformers 5.23.0 (torch 2.13.0, CPU, float32, its default
    sdpa attention): `reference_model().save_pretrained(d)`, then
    `transformers.BertForMaskedLM.from_pretrained(d)` run on `reference_ids()` with
    `reference_mask()` and `reference_token_types()`.
    """
    with torch.no_grad():
        logits = reference_model()(reference_ids(), **reference_inputs()).logits
    assert max_abs_diff(logits[0, :3, :5], torch.tensor(EXPECTED_LOGITS_ROW0)) < 1e-4
    assert max_abs_diff(logits[1, 9, :5], torch.tensor(EXPECTED_LOGITS_LAST)) < 1e-4


@slow
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_on_cpu_tracks_float32(dtype: torch.dtype) -> None:
    inputs = {"input_ids": reference_ids(), **reference_inputs()}
    real = reference_mask().bool()
    check_precision_against_cpu_float32(
        reference_model, inputs, device="cpu", dtype=dtype, tolerance=0.1, compare=real
    )


@slow
@require_torch_gpu
@pytest.mark.parametrize(
    ("dtype", "tolerance"), [(torch.float32, 1e-4), (torch.float16, 0.05), (torch.bfloat16, 0.05)]
)
def test_gpu_forward_tracks_cpu_float32(dtype: torch.dtype, tolerance: float) -> None:
    inputs = {"input_ids": reference_ids(), **reference_inputs()}
    real = reference_mask().bool()
    check_precision_against_cpu_float32(
        reference_model, inputs, device="cuda", dtype=dtype, tolerance=tolerance, compare=real
    )
