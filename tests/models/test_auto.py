"""Tests of the model registry: discovery by folder, config and model lookup."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model_lib.auto import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    config_class_for,
    load_pretrained,
    model_class_for_architecture,
    model_classes_for,
    model_types,
)
from model_lib.configuration_utils import ConfigError
from model_lib.models.bert.modeling_bert import BertForMaskedLM, BertModel
from model_lib.models.gpt2.configuration_gpt2 import GPT2Config
from model_lib.models.gpt2.modeling_gpt2 import GPT2LMHeadModel, GPT2Model
from model_lib.models.llama.modeling_llama import LlamaForCausalLM, LlamaModel
from model_lib.testing import tiny_config


def test_discovers_every_model_folder() -> None:
    assert {"bert", "gpt2", "llama"} <= set(model_types())
    assert config_class_for("gpt2") is GPT2Config
    assert model_classes_for("llama") == {"base": LlamaModel, "causal-lm": LlamaForCausalLM}
    assert model_classes_for("bert") == {"base": BertModel, "masked-lm": BertForMaskedLM}


def test_unknown_names_are_clear_errors() -> None:
    with pytest.raises(KeyError, match=r"unknown model_type 'mamba'; known: .*gpt2"):
        config_class_for("mamba")
    with pytest.raises(KeyError, match="no model class named 'GPT3Model'"):
        model_class_for_architecture("GPT3Model")
    with pytest.raises(KeyError, match="'gpt2' has no masked-lm model"):
        AutoModelForMaskedLM.class_for("gpt2")


def test_auto_classes_load_by_model_type(tmp_path: Path) -> None:
    GPT2LMHeadModel(tiny_config(GPT2Config)).save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), GPT2Config)
    assert type(AutoModelForCausalLM.from_pretrained(tmp_path)) is GPT2LMHeadModel
    assert type(AutoModel.from_pretrained(tmp_path)) is GPT2Model
    assert type(load_pretrained(tmp_path)) is GPT2LMHeadModel
    assert AutoModel.from_pretrained(tmp_path, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_from_config_and_for_model() -> None:
    config = AutoConfig.for_model(
        "llama",
        hidden_size=32,
        num_attention_heads=4,
        num_hidden_layers=1,
        intermediate_size=8,
        vocab_size=10,
    )
    assert type(AutoModelForCausalLM.from_config(config)) is LlamaForCausalLM


def test_config_without_model_type_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"hidden_size": 4}')
    with pytest.raises(ConfigError, match="has no model_type"):
        AutoModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        AutoConfig.from_pretrained(tmp_path)


def test_architecture_must_match_model_type(tmp_path: Path) -> None:
    GPT2LMHeadModel(tiny_config(GPT2Config)).save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text()
    (tmp_path / "config.json").write_text(config.replace('"GPT2LMHeadModel"', '"BertModel"'))
    with pytest.raises(ConfigError, match="architecture BertModel is a bert model"):
        load_pretrained(tmp_path)


def test_config_lookup_and_scaffold_do_not_import_torch() -> None:
    code = (
        "import sys, model_lib.auto, model_lib.scaffold;"
        "model_lib.auto.config_class_for('gpt2');"
        "model_lib.auto.AutoConfig.for_model('bert');"
        "sys.exit('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or "torch was imported"
