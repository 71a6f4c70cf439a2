"""Corrupted labels: a share of the training labels redrawn at random (Zhang et al., 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["CorruptedLabels", "corrupt_labels"]


@dataclass(frozen=True)
class CorruptedLabels:
    """Labels after corruption.

    Attributes:
        labels: ``(N,)`` the new labels.
        resampled: ``(N,)`` bool, the examples whose label was redrawn.
        changed: ``(N,)`` bool, the examples whose label is now wrong (a redrawn label
            equals the true one with probability 1/K).
    """

    labels: torch.Tensor
    resampled: torch.Tensor
    changed: torch.Tensor


def corrupt_labels(labels: torch.Tensor, fraction: float, num_classes: int, *, generator: torch.Generator | None = None) -> CorruptedLabels:
    """Redraw the labels of ``round(fraction * N)`` examples uniformly from all classes.

    Zhang et al. (2017) redraw each label independently with probability ``fraction``; this
    redraws a fixed count instead, so every draw at a level has the same number of redrawn
    labels and only which ones, and what they become, varies. Either way, at
    ``fraction = 0.8`` with ten classes about 72 % of the labels end up wrong. ``labels`` is
    not modified.

    Args:
        labels: ``(N,)`` class indices in ``[0, num_classes)``.
        fraction: share of examples whose label is redrawn, in ``[0, 1]``.
        num_classes: K.
        generator: CPU generator choosing the examples and the new labels.
    """
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor of shape (N,), got {labels.dtype} of shape {tuple(labels.shape)}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}] for num_classes={num_classes}, got values in [{int(labels.min())}, {int(labels.max())}]")
    n = labels.shape[0]
    chosen = torch.randperm(n, generator=generator)[: round(fraction * n)]
    new = labels.clone().cpu()
    new[chosen] = torch.randint(0, num_classes, (len(chosen),), generator=generator)
    resampled = torch.zeros(n, dtype=torch.bool)
    resampled[chosen] = True
    new = new.to(labels.device)
    return CorruptedLabels(new, resampled.to(labels.device), new != labels)
