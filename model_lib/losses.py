"""Training losses shared by the heads; -100 in `labels` marks positions to ignore."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def _check_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if labels.shape != logits.shape[:2]:
        raise ValueError(
            f"labels {tuple(labels.shape)} must match the logits' [batch, seq] "
            f"{tuple(logits.shape[:2])} (were only some logits kept?)"
        )


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy: the logits at t are scored against the label at t+1."""
    _check_labels(logits, labels)
    shifted_logits = logits[:, :-1].float()  # [B, S-1, V]
    shifted_labels = labels[:, 1:].to(logits.device)  # [B, S-1]
    return F.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.shape[-1]),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
    )


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions whose label is not -100 (the masked ones)."""
    _check_labels(logits, labels)
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        labels.to(logits.device).reshape(-1),
        ignore_index=IGNORE_INDEX,
    )
