"""Loading and saving checkpoints in the Hugging Face layout (`config.json` + safetensors).

The state-dict keys of every model here are the keys that library uses for the same
architecture, so its checkpoints load unchanged. What that library tolerates when loading
is handled explicitly, and everything else is an error naming the offending key:

- a base-model checkpoint loaded into a head class (keys lack the `transformer.` /
  `model.` / `bert.` prefix) and a head checkpoint loaded into a base class (the prefix is
  stripped, the head's own weights are set aside);
- tied weights (`lm_head.weight` when the embeddings are tied) are omitted on save and may
  be present or absent on load;
- buffers that older versions saved and newer ones recompute (`attn.bias`, `position_ids`,
  `rotary_emb.inv_freq`) are accepted and dropped, as are legacy `gamma`/`beta` names.

Only safetensors files are read: a pickle checkpoint can run code when loaded.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from model_lib.configuration_utils import PretrainedConfig

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
_PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_LEGACY_SUFFIXES = ((".gamma", ".weight"), (".beta", ".bias"))
_MAX_KEYS_IN_MESSAGE = 10


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model: unknown, missing or mis-shaped keys."""


def _describe_keys(keys: Iterable[str]) -> str:
    listed = sorted(keys)
    shown = ", ".join(repr(k) for k in listed[:_MAX_KEYS_IN_MESSAGE])
    more = len(listed) - _MAX_KEYS_IN_MESSAGE
    return shown + (f" and {more} more" if more > 0 else "")


def _parse_dtype(value: torch.dtype | str | None, config: PretrainedConfig) -> torch.dtype:
    if value is None:
        return torch.get_default_dtype()
    if isinstance(value, torch.dtype):
        if not value.is_floating_point:
            raise ValueError(f"dtype must be a floating-point type, got {value}")
        return value
    if value == "auto":
        value = config.dtype or "float32"
    resolved = getattr(torch, value, None) if isinstance(value, str) else None
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"unknown dtype {value!r}; use a torch dtype, its name, or 'auto'")
    return resolved


def read_safetensors_checkpoint(
    folder: str | Path, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint in `folder`, single-file or sharded with an index."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    single = folder / WEIGHTS_NAME
    index = folder / WEIGHTS_INDEX_NAME
    if single.is_file():
        files = [single]
    elif index.is_file():
        files = _shard_files(index)
    else:
        pickled = [name for name in _PICKLE_NAMES if (folder / name).is_file()]
        hint = (
            f"; found {pickled[0]}, which is a pickle file this library refuses to load: "
            "convert it to safetensors first"
            if pickled
            else ""
        )
        raise FileNotFoundError(f"no {WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME} in {folder}{hint}")
    tensors: dict[str, torch.Tensor] = {}
    for path in files:
        try:
            shard = load_file(path, device=str(device))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: cannot read safetensors file: {exc}") from exc
        duplicated = tensors.keys() & shard.keys()
        if duplicated:
            raise CheckpointError(
                f"{path}: keys repeated across shards: {_describe_keys(duplicated)}"
            )
        tensors.update(shard)
    return tensors


def _shard_files(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index}: not a safetensors index with a weight_map: {exc}") from exc
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: weight_map must be a non-empty object")
    files = []
    for name in sorted(set(weight_map.values())):
        if not isinstance(name, str) or Path(name).name != name:
            raise CheckpointError(f"{index}: shard name {name!r} must be a plain file name")
        path = index.parent / name
        if not path.is_file():
            raise FileNotFoundError(f"{index} names shard {name}, which is missing")
        files.append(path)
    return files


class PreTrainedModel(nn.Module):
    """Base of every model: config handling, weight tying, from/save_pretrained."""

    config_class: ClassVar[type[PretrainedConfig]]
    # The attribute holding the base model inside head classes ("transformer", "model",
    # "bert"); base classes have no such attribute.
    base_model_prefix: ClassVar[str] = ""
    # What the class is for, used by the auto registry: "base", "causal-lm", "masked-lm".
    # Left None on the shared per-architecture base class, which is not a model by itself.
    task: ClassVar[str | None] = None
    # Patterns of checkpoint keys that are accepted and discarded (see the module docstring).
    _keys_to_ignore_on_load: ClassVar[tuple[str, ...]] = ()
    # For base classes: patterns of head weights set aside when loading a head checkpoint.
    _head_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: PretrainedConfig) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        super().__init__()
        self.config = config

    # ----- weights -----------------------------------------------------------------------

    def tied_weights(self) -> dict[str, str]:
        """{alias key: source key} of parameters that share storage, per the config."""
        return {}

    def tie_weights(self) -> None:
        for alias, source in self.tied_weights().items():
            module_name, _, attribute = alias.rpartition(".")
            setattr(self.get_submodule(module_name), attribute, self.get_parameter(source))

    def _init_weights(self, module: nn.Module) -> None:
        """Initialise one module's own parameters the way the reference models were trained:
        N(0, initializer_range) weights, zero biases and padding rows, unit norms.

        Architectures extend this for their own module types.
        """
        std = getattr(self.config, "initializer_range", 0.02)
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def post_init(self) -> None:
        """Initialise weights and tie them; the last line of every model's `__init__`.

        A head class calls this after its base model already did, so modules initialised
        once are skipped: children before parents, as a parent may re-initialise a child's
        weights (GPT-2's scaled residual projections).
        """
        self._initialize_tree(self)
        self.tie_weights()

    def _initialize_tree(self, module: nn.Module) -> None:
        for child in module.children():
            self._initialize_tree(child)
        if not getattr(module, "_weights_initialized", False):
            self._init_weights(module)
            module._weights_initialized = True

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    def num_parameters(self) -> int:
        """Distinct parameters (tied ones counted once)."""
        return sum(p.numel() for p in self.parameters())

    # ----- construction ------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: PretrainedConfig, **model_kwargs: Any) -> Self:
        """A randomly initialised model."""
        return cls(config, **model_kwargs)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        *,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str = "cpu",
        **model_kwargs: Any,
    ) -> Self:
        """Load `folder/config.json` and its safetensors weights, offline.

        `dtype` None gives torch's default dtype (float32), "auto" the dtype recorded in the
        config. The model comes back in eval mode, as inference is what loading is for.
        """
        folder = Path(folder)
        config = cls.config_class.from_pretrained(folder)
        target_dtype = _parse_dtype(dtype, config)
        tensors = read_safetensors_checkpoint(folder, device=device)
        return cls.from_state_dict(
            config, tensors, dtype=target_dtype, source=str(folder), **model_kwargs
        )

    @classmethod
    def from_state_dict(
        cls,
        config: PretrainedConfig,
        tensors: Mapping[str, torch.Tensor],
        *,
        dtype: torch.dtype | None = None,
        source: str = "state dict",
        **model_kwargs: Any,
    ) -> Self:
        """Build the model directly from checkpoint tensors, with no random init pass."""
        with torch.device("meta"):
            model = cls(config, **model_kwargs)
        state = model._match_checkpoint(dict(tensors), source)
        target_dtype = dtype or torch.get_default_dtype()
        state = {
            key: value.to(target_dtype) if value.is_floating_point() else value
            for key, value in state.items()
        }
        model.load_state_dict(state, strict=False, assign=True)
        model.tie_weights()
        leftover = [name for name, t in model.state_dict(keep_vars=True).items() if t.is_meta]
        if leftover:
            raise CheckpointError(f"{source}: no value loaded for {_describe_keys(leftover)}")
        return model.eval()

    def _match_checkpoint(
        self, state: dict[str, torch.Tensor], source: str
    ) -> dict[str, torch.Tensor]:
        """Map checkpoint keys onto this model's keys, or raise naming every bad key."""
        state = _rename_legacy_keys(state, source)
        prefix = f"{self.base_model_prefix}." if self.base_model_prefix else ""
        is_head_class = bool(prefix) and hasattr(self, self.base_model_prefix)
        has_prefix = bool(prefix) and any(key.startswith(prefix) for key in state)
        if is_head_class and not has_prefix:
            state = {prefix + key: value for key, value in state.items()}
        elif prefix and not is_head_class and has_prefix:
            state = {
                key.removeprefix(prefix): value
                for key, value in state.items()
                if key.startswith(prefix) or not _matches(self._head_keys, key)
            }
        state = {k: v for k, v in state.items() if not _matches(self._keys_to_ignore_on_load, k)}

        tied = self.tied_weights()
        for alias, source_key in tied.items():
            alias_value = state.pop(alias, None)
            if source_key not in state and alias_value is not None:
                state[source_key] = alias_value

        expected = {k: v for k, v in self.state_dict(keep_vars=True).items() if k not in tied}
        unexpected = state.keys() - expected.keys()
        if unexpected:
            raise CheckpointError(
                f"{source}: unknown keys for {type(self).__name__}: {_describe_keys(unexpected)}"
            )
        missing = expected.keys() - state.keys()
        if missing:
            raise CheckpointError(
                f"{source}: keys missing for {type(self).__name__}: {_describe_keys(missing)}"
            )
        for key, value in state.items():
            if value.shape != expected[key].shape:
                raise CheckpointError(
                    f"{source}: shape mismatch for {key!r}: checkpoint has "
                    f"{tuple(value.shape)}, {type(self).__name__} expects "
                    f"{tuple(expected[key].shape)}"
                )
        return state

    # ----- saving ------------------------------------------------------------------------

    def save_pretrained(self, folder: str | Path) -> list[Path]:
        """Write `config.json` and `model.safetensors` (tied aliases omitted); return paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tied = self.tied_weights()
        tensors = {
            key: value.detach().to("cpu").contiguous()
            for key, value in self.state_dict().items()
            if key not in tied
        }
        dtype_name = str(self.dtype).removeprefix("torch.")
        config = dataclasses.replace(
            self.config, architectures=[type(self).__name__], dtype=dtype_name
        )
        weights_path = folder / WEIGHTS_NAME
        partial = folder / f".{WEIGHTS_NAME}.partial"
        save_file(tensors, partial, metadata={"format": "pt"})
        partial.replace(weights_path)
        return [config.save_pretrained(folder), weights_path]


def _matches(patterns: Iterable[str], key: str) -> bool:
    return any(re.search(pattern, key) for pattern in patterns)


def _rename_legacy_keys(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new_key = key
        for old, new in _LEGACY_SUFFIXES:
            if key.endswith(old) and "LayerNorm" in key:
                new_key = key.removesuffix(old) + new
        if new_key in renamed:
            raise CheckpointError(f"{source}: {key!r} and {new_key!r} name the same weight")
        renamed[new_key] = value
    return renamed


def check_input_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    """Reject token ids an embedding lookup would fail on with an obscure device error."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"input_ids must be int64 or int32, got {input_ids.dtype}")
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids has no tokens")
    low, high = torch.aminmax(input_ids)
    if int(low) < 0 or int(high) >= vocab_size:
        raise ValueError(
            f"input_ids must lie in [0, {vocab_size}), got values in [{int(low)}, {int(high)}]"
        )
