"""Test helpers for the model library: `slow`, `require_torch_gpu`, tiny configs, inputs.

`slow` tests run only when the environment variable RUN_SLOW is truthy (`yes`, `true` or
`1`, any case), which is how the slow-test jobs switch them on; everything else in a test
module runs on every CI pass, on the CPU, in seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pytest
import torch

from model_lib.configuration_utils import PretrainedConfig

_T = TypeVar("_T")
_C = TypeVar("_C", bound=PretrainedConfig)

TRUTHY_VALUES = frozenset({"yes", "true", "1"})

# Sizes small enough for a forward pass in milliseconds, large enough that every code path
# (several heads, several layers, grouped KV heads, padding) is exercised. Keys are the
# canonical field names; configs using other spellings map them via `attribute_map`.
TINY_SIZES: Mapping[str, int] = {
    "vocab_size": 99,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 37,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
}


def is_truthy(value: str | None) -> bool:
    """Whether an environment value switches a feature on (`yes`, `true`, `1`)."""
    return value is not None and value.strip().lower() in TRUTHY_VALUES


def run_slow_enabled(environ: Mapping[str, str] | None = None) -> bool:
    return is_truthy((os.environ if environ is None else environ).get("RUN_SLOW"))


def slow(test: _T) -> _T:
    """Mark a test slow: skipped unless RUN_SLOW is truthy."""
    skip = pytest.mark.skipif(
        not run_slow_enabled(), reason="slow test: set RUN_SLOW=yes to run it"
    )
    return pytest.mark.slow(skip(test))


def require_torch_gpu(test: _T) -> _T:
    """Skip a test when no CUDA device is visible."""
    return pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(test)


def tiny_config(config_class: type[_C], **overrides: Any) -> _C:
    """A small config of `config_class`; `overrides` use any of the class's field names."""
    values: dict[str, Any] = {}
    for name, size in TINY_SIZES.items():
        field = config_class.resolve_field(name)
        if field is not None:
            values[field] = size
    values.update(overrides)
    return config_class.from_dict({"model_type": config_class.model_type, **values})


def ids_tensor(
    shape: Sequence[int], vocab_size: int, *, seed: int = 0, low: int = 0
) -> torch.Tensor:
    """Random token ids in [low, vocab_size), reproducible from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, vocab_size, tuple(shape), generator=generator)


def left_pad(
    rows: Sequence[Sequence[int]] | Sequence[torch.Tensor], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad rows of different lengths; return (input_ids, attention_mask)."""
    return _pad(rows, pad_token_id, left=True)


def right_pad(
    rows: Sequence[Sequence[int]] | Sequence[torch.Tensor], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad rows of different lengths; return (input_ids, attention_mask)."""
    return _pad(rows, pad_token_id, left=False)


def _pad(
    rows: Sequence[Sequence[int]] | Sequence[torch.Tensor], pad_token_id: int, *, left: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    tensors = [torch.as_tensor(row, dtype=torch.long) for row in rows]
    if not tensors or any(t.dim() != 1 or t.numel() == 0 for t in tensors):
        raise ValueError("rows must be a non-empty list of non-empty 1-D token sequences")
    width = max(t.numel() for t in tensors)
    ids = torch.full((len(tensors), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(tensors), width), dtype=torch.long)
    for i, row in enumerate(tensors):
        span = slice(width - row.numel(), width) if left else slice(0, row.numel())
        ids[i, span] = row
        mask[i, span] = 1
    return ids, mask


def randomize_weights(model: torch.nn.Module, seed: int, std: float = 0.02) -> torch.nn.Module:
    """Overwrite every parameter with values drawn from an explicit CPU generator.

    Weights are drawn in sorted-name order, independent of module init code and of the
    device, so a test can rebuild exactly the same model on any machine. Norm scales stay
    near 1 so activations keep a realistic size.
    """
    generator = torch.Generator().manual_seed(seed)
    norm_scales = {
        f"{prefix}.weight" if prefix else "weight"
        for prefix, module in model.named_modules()
        if "Norm" in type(module).__name__
    }
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            values = torch.randn(param.shape, generator=generator, dtype=torch.float32) * std
            if name in norm_scales:
                values += 1.0
            param.copy_(values)
    return model


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest elementwise difference, compared in float32 on the CPU."""
    return (a.detach().float().cpu() - b.detach().float().cpu()).abs().max().item()


def hf_class_or_skip(name: str) -> Any:
    """The Hugging Face `transformers` class `name`; skips the test when it is unavailable.

    Comparisons against that library are optional checks: CI does not install it, and a
    model scaffolded from an existing one has no counterpart there.
    """
    try:
        import transformers
    except ImportError as exc:  # absent, or present but unusable with this torch
        pytest.skip(f"transformers is not importable: {exc}")
    cls = getattr(transformers, name, None)
    if cls is None:
        pytest.skip(f"transformers {transformers.__version__} has no {name}")
    return cls


# ----- checks shared by the model test files ---------------------------------------------
# Each takes a model in eval mode and raises AssertionError with a readable message.


def check_causal_masking(model: torch.nn.Module, *, seq: int = 12, changed_at: int = 7) -> None:
    """Changing a token must leave the logits of every earlier position untouched."""
    vocab = model.config.vocab_size
    ids = ids_tensor((2, seq), vocab, seed=11)
    altered = ids.clone()
    altered[:, changed_at:] = (altered[:, changed_at:] + 1) % vocab
    with torch.no_grad():
        before = model(ids).logits
        after = model(altered).logits
    assert torch.allclose(before[:, :changed_at], after[:, :changed_at], atol=1e-6), (
        "a future token changed past logits"
    )
    assert not torch.allclose(before[:, changed_at:], after[:, changed_at:]), (
        "changing a token did not change its own logits"
    )


def check_padding_invariance(model: torch.nn.Module, *, side: str, pad_token_id: int = 0) -> None:
    """In a padded batch each real token gets the logits it gets unpadded.

    Decoders are padded on the left (`side="left"`), encoders usually on the right.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    vocab = model.config.vocab_size
    rows = [ids_tensor((n,), vocab, seed=20 + n, low=1) for n in (9, 5, 1)]
    ids, mask = (left_pad if side == "left" else right_pad)(rows, pad_token_id)
    width = ids.shape[1]
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).logits
        for i, row in enumerate(rows):
            alone = model(row[None]).logits[0]
            start = width - row.numel() if side == "left" else 0
            got = batched[i, start : start + row.numel()]
            assert torch.allclose(got, alone, atol=1e-5), (
                f"row {i}: padded logits differ by {max_abs_diff(got, alone):.2e}"
            )


def check_cache_matches_full_forward(model: torch.nn.Module, *, seq: int = 10) -> None:
    """Prompt then token-by-token decoding with the cache equals one full forward."""
    from model_lib.cache import KVCache

    ids = ids_tensor((2, seq), model.config.vocab_size, seed=31)
    split = seq - 4
    with torch.no_grad():
        full = model(ids).logits
        cache = KVCache(model.num_cache_layers())
        parts = [model(ids[:, :split], past_key_values=cache, use_cache=True).logits]
        for t in range(split, seq):
            parts.append(model(ids[:, t : t + 1], past_key_values=cache, use_cache=True).logits)
    assert cache.get_seq_length() == seq
    incremental = torch.cat(parts, dim=1)
    assert torch.allclose(incremental, full, atol=1e-5), (
        f"cached decoding differs from the full forward by {max_abs_diff(incremental, full):.2e}"
    )


def check_generate_cache_equals_no_cache(model: Any, **sampling: Any) -> None:
    """`generate` gives the same tokens with and without the KV cache."""
    ids = ids_tensor((2, 6), model.config.vocab_size, seed=41)
    outputs = []
    for use_cache in (True, False):
        generator = torch.Generator().manual_seed(5) if sampling.get("do_sample") else None
        outputs.append(
            model.generate(
                ids,
                max_new_tokens=8,
                eos_token_id=(),
                use_cache=use_cache,
                generator=generator,
                **sampling,
            )
        )
    assert outputs[0].shape == (2, 14)
    assert torch.equal(outputs[0][:, :6], ids), "the prompt must come back unchanged"
    assert torch.equal(outputs[0], outputs[1]), "cached and uncached generation disagree"


def check_batched_generation_matches_single(model: Any, *, pad_token_id: int = 0) -> None:
    """Left-padded batch generation gives each row what it gets alone."""
    vocab = model.config.vocab_size
    rows = [ids_tensor((n,), vocab, seed=50 + n, low=1) for n in (7, 3)]
    ids, mask = left_pad(rows, pad_token_id)
    batched = model.generate(ids, attention_mask=mask, max_new_tokens=6, eos_token_id=())
    for i, row in enumerate(rows):
        alone = model.generate(row[None], max_new_tokens=6, eos_token_id=())
        assert torch.equal(batched[i, ids.shape[1] :], alone[0, row.numel() :]), (
            f"row {i} generates differently when batched"
        )


def check_generate_stops_on_eos(model: Any) -> None:
    """A row stops at EOS and is padded afterwards; generation ends when all rows stopped."""
    ids = ids_tensor((2, 5), model.config.vocab_size, seed=61)
    free = model.generate(ids, max_new_tokens=6, eos_token_id=())
    eos = int(free[0, 5])  # the first token row 0 generates
    pad = (eos + 1) % model.config.vocab_size
    stopped = model.generate(ids, max_new_tokens=6, eos_token_id=eos, pad_token_id=pad)
    assert int(stopped[0, 5]) == eos
    assert bool((stopped[0, 6:] == pad).all()), "tokens after EOS must be padding"
    row1_free = free[1, 5:]
    if eos not in row1_free.tolist():
        assert torch.equal(stopped[1, 5:], row1_free), "row 1 must not be affected by row 0"
    else:
        first = row1_free.tolist().index(eos)
        assert torch.equal(stopped[1, 5 : 6 + first], row1_free[: first + 1])
    only_row0 = model.generate(ids[:1], max_new_tokens=6, eos_token_id=eos)
    assert only_row0.shape == (1, 6), "generation must end once every row has stopped"


def check_save_load_round_trip(model: Any, folder: Any, **forward_kwargs: Any) -> Any:
    """Saving and loading gives an identical config and identical outputs; returns the copy."""
    model.save_pretrained(folder)
    reloaded = type(model).from_pretrained(folder)
    assert reloaded.config.to_dict() == {
        **model.config.to_dict(),
        "architectures": [type(model).__name__],
        "dtype": "float32",
    }
    ids = ids_tensor((2, 7), model.config.vocab_size, seed=71)
    with torch.no_grad():
        expected = model(ids, **forward_kwargs).logits
        got = reloaded(ids, **forward_kwargs).logits
    assert torch.equal(expected, got), "reloaded model computes different logits"
    return reloaded


def check_tokens_near_argmax(
    reference: torch.nn.Module, sequences: torch.Tensor, *, start: int, tolerance: float = 0.05
) -> None:
    """Tokens generated at reduced precision must be (near-)argmax for a float32 reference.

    Comparing token ids directly would fail on near-ties, where rounding legitimately picks
    the runner-up; instead each chosen token's float32 logit must be within `tolerance`
    (relative) of the best one at its step.
    """
    sequences = sequences.cpu()
    with torch.no_grad():
        logits = reference(sequences).logits[:, start - 1 : -1]  # predicts sequences[:, start:]
    chosen = logits.gather(-1, sequences[:, start:, None]).squeeze(-1)
    best = logits.max(-1).values
    gap = best - chosen
    allowed = tolerance * best.abs().clamp(min=1.0)
    assert bool((gap <= allowed).all()), f"a generated token trails the argmax by {gap.max():.3f}"


def check_precision_against_cpu_float32(
    build: Callable[[], torch.nn.Module],
    inputs: Mapping[str, torch.Tensor],
    *,
    device: str,
    dtype: torch.dtype,
    tolerance: float,
    compare: torch.Tensor | None = None,
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Logits on `device` in `dtype` stay within `tolerance` (relative to the largest
    float32 CPU logit) of a float32 CPU copy; returns (cpu_reference, moved_model).

    `build` must return the same weights each call; `compare` selects the positions to
    compare ([batch, seq] bool, e.g. the non-padding ones).
    """
    reference = build()
    model = build().to(device, dtype)
    with torch.no_grad():
        expected = reference(**inputs).logits
        got = model(**{k: v.to(device) for k, v in inputs.items()}).logits
    assert got.dtype == dtype
    assert bool(torch.isfinite(got).all()), "non-finite logits"
    if compare is not None:
        expected, got = expected[compare], got.cpu()[compare]
    limit = tolerance * expected.abs().max().item()
    assert max_abs_diff(got, expected) < limit, f"{dtype} on {device} drifts past {limit:.3g}"
    return reference, model


def check_decoder_generation_on_device(
    reference: Any, model: Any, ids: torch.Tensor, *, new_tokens: int = 12
) -> None:
    """`generate` on the model's device agrees with the float32 CPU reference.

    In float32 the tokens must be identical; in half precision every token must be a
    (near-)argmax of the reference, with and without the cache. Sampling with a device
    generator and left-padded batches (no NaN from fully padded rows) are exercised too.
    """
    device = model.device
    prompt = ids.to(device)
    length = ids.shape[1] + new_tokens
    for use_cache in (True, False):
        tokens = model.generate(
            prompt, max_new_tokens=new_tokens, eos_token_id=(), use_cache=use_cache
        )
        assert tokens.shape == (ids.shape[0], length)
        if model.dtype == torch.float32:
            expected = reference.generate(ids, max_new_tokens=new_tokens, eos_token_id=())
            assert torch.equal(tokens.cpu(), expected)
        else:
            check_tokens_near_argmax(reference, tokens, start=ids.shape[1])
    sampled = model.generate(
        prompt,
        max_new_tokens=new_tokens,
        eos_token_id=(),
        do_sample=True,
        top_p=0.9,
        generator=torch.Generator(device).manual_seed(0),
    )
    assert sampled.shape == (ids.shape[0], length)
    assert bool((sampled >= 0).all()) and bool((sampled < model.config.vocab_size).all())
    padded, mask = left_pad([ids[0, ids.shape[1] // 2 :], ids[1]], pad_token_id=0)
    with torch.no_grad():
        padded_logits = model(padded.to(device), attention_mask=mask.to(device)).logits
    assert bool(torch.isfinite(padded_logits).all()), "padding produced non-finite logits"
    batched = model.generate(
        padded.to(device), attention_mask=mask.to(device), max_new_tokens=4, eos_token_id=()
    )
    assert batched.shape == (2, padded.shape[1] + 4)
