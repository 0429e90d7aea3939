"""The activation functions named in Hugging Face configs, as torch callables."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from model_lib.configuration_utils import ACTIVATION_NAMES


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


# "gelu_new", "gelu_fast" and "gelu_pytorch_tanh" are three spellings of the tanh
# approximation of GELU; the fused kernel matches the spelled-out formulas within float
# rounding.
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_new": functools.partial(F.gelu, approximate="tanh"),
    "gelu_fast": functools.partial(F.gelu, approximate="tanh"),
    "gelu_pytorch_tanh": functools.partial(F.gelu, approximate="tanh"),
    "quick_gelu": _quick_gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}
assert frozenset(_ACTIVATIONS) == ACTIVATION_NAMES, "activation tables out of sync"


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function for a config's activation name; unknown names raise `ValueError`."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(_ACTIVATIONS)}") from None
