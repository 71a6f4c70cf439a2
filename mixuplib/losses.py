"""Losses for mixed batches: soft targets, and the two equal ways to score a mixed batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .mixing import MixedBatch

__all__ = ["soft_targets", "soft_cross_entropy", "mixup_cross_entropy", "check_labels", "CRITERIA", "check_criterion",
           "softmax_bce", "label_loss", "mixup_loss"]

# The training criteria a method can use: the cross-entropy, and the binary cross-entropy on the softmax
# outputs with which Verma et al.'s official manifold mixup code trains every method, ERM included.
CRITERIA = ("cross_entropy", "softmax_bce")


def check_labels(y: torch.Tensor, num_classes: int, name: str = "y") -> None:
    """Raise ValueError if class indices ``y`` fall outside ``[0, num_classes)``.

    Checked on CPU tensors only: on an accelerator the check would stall the device
    every step, and torch's own kernels assert on out-of-range labels there.
    """
    if y.is_floating_point() or y.device.type != "cpu" or y.numel() == 0:
        return
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= num_classes:
        raise ValueError(f"{name} must hold class indices in [0, {num_classes - 1}] for num_classes={num_classes}, got values in [{low}, {high}]")


def _as_distribution(y: torch.Tensor, num_classes: int, label_smoothing: float, dtype) -> torch.Tensor:
    if y.dim() == 1:
        check_labels(y, num_classes)
        dist = F.one_hot(y.long(), num_classes).to(dtype)
    else:
        if y.shape[1] != num_classes:
            raise ValueError(f"soft labels must have num_classes={num_classes} columns, got shape {tuple(y.shape)}")
        dist = y.to(dtype)
    if label_smoothing:
        dist = dist * (1.0 - label_smoothing) + label_smoothing / num_classes
    return dist


def soft_targets(batch: MixedBatch, num_classes: int, label_smoothing: float = 0.0) -> torch.Tensor:
    """The mixed label ``lam * e(y_a) + (1 - lam) * e(y_b)`` of every example.

    ``e(y)`` is the one-hot vector of ``y`` (or ``y`` itself when it already holds
    probabilities), smoothed towards the uniform distribution by ``label_smoothing``.

    Args:
        batch: a :class:`~mixuplib.mixing.MixedBatch`.
        num_classes: K, the number of classes.
        label_smoothing: in ``[0, 1]``; 0 leaves the one-hot vectors as they are.

    Returns:
        Shape ``(B, K)``: each row is a probability distribution.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    dtype = batch.lam.dtype if batch.lam.is_floating_point() else torch.float32
    target_a = _as_distribution(batch.y_a, num_classes, label_smoothing, dtype)
    target_b = _as_distribution(batch.y_b, num_classes, label_smoothing, dtype)
    lam = batch.lam.to(target_a.device, non_blocking=True)
    lam = lam.reshape(-1, 1) if lam.dim() else lam
    return torch.lerp(target_b, target_a, lam)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy ``-sum_k t_k log softmax(logits)_k`` against soft targets.

    Args:
        logits: shape ``(B, K)``.
        targets: shape ``(B, K)``, each row a probability distribution.

    Returns:
        A 0-d tensor.
    """
    if logits.dim() != 2 or targets.shape != logits.shape:
        raise ValueError(f"logits and targets must both have shape (B, K), got logits {tuple(logits.shape)} and targets {tuple(targets.shape)}")
    return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def mixup_cross_entropy(logits: torch.Tensor, batch: MixedBatch, label_smoothing: float = 0.0) -> torch.Tensor:
    """``mean(lam * CE(logits, y_a) + (1 - lam) * CE(logits, y_b))``, the mixup paper's loss.

    Cross-entropy is linear in its target, so this equals :func:`soft_cross_entropy`
    against :func:`soft_targets` in value and gradient; it never builds the ``(B, K)``
    targets. ``lam`` may be one number or one per example.

    Args:
        logits: shape ``(B, K)``.
        batch: the :class:`~mixuplib.mixing.MixedBatch` the logits were computed on.
        label_smoothing: passed to each cross-entropy term.

    Returns:
        A 0-d tensor.
    """
    if logits.dim() != 2 or logits.shape[0] != batch.y_a.shape[0]:
        raise ValueError(f"logits must have shape (B, K) with B={batch.y_a.shape[0]}, got {tuple(logits.shape)}")
    for name, y in (("batch.y_a", batch.y_a), ("batch.y_b", batch.y_b)):
        if y.dim() == 1:
            check_labels(y, logits.shape[1], name)
    loss_a = F.cross_entropy(logits, batch.y_a, reduction="none", label_smoothing=label_smoothing)
    loss_b = F.cross_entropy(logits, batch.y_b, reduction="none", label_smoothing=label_smoothing)
    return torch.lerp(loss_b, loss_a, batch.lam.to(loss_a.dtype)).mean()


def check_criterion(criterion) -> str:
    """``criterion`` itself if it is one of :data:`CRITERIA`, else ValueError."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {criterion!r}")
    return criterion


def softmax_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of ``softmax(logits)`` against ``targets``, averaged over all ``B x K``
    entries: ``nn.BCELoss()(softmax(logits), targets)``, as the official manifold mixup code
    trains (``bce_loss(softmax(output), reweighted_target)``). Computed in float32 outside
    autocast, where torch refuses the binary cross-entropy.

    Args:
        logits: shape ``(B, K)``.
        targets: shape ``(B, K)``, entries in [0, 1] (one-hot or mixed labels).

    Returns:
        A 0-d tensor.
    """
    if logits.dim() != 2 or targets.shape != logits.shape:
        raise ValueError(f"logits and targets must both have shape (B, K), got logits {tuple(logits.shape)} and targets {tuple(targets.shape)}")
    with torch.autocast(logits.device.type, enabled=False):
        return F.binary_cross_entropy(F.softmax(logits.float(), dim=-1), targets.float())


def label_loss(logits: torch.Tensor, y: torch.Tensor, criterion: str = "cross_entropy",
               label_smoothing: float = 0.0) -> torch.Tensor:
    """The loss of ``logits`` ``(B, K)`` against class indices ``y`` ``(B,)`` under ``criterion``."""
    if check_criterion(criterion) == "cross_entropy":
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return softmax_bce(logits, _as_distribution(y, logits.shape[1], label_smoothing, torch.float32))


def mixup_loss(logits: torch.Tensor, batch: MixedBatch, criterion: str = "cross_entropy",
               label_smoothing: float = 0.0) -> torch.Tensor:
    """The loss of a mixed batch under ``criterion``: :func:`mixup_cross_entropy`, or
    :func:`softmax_bce` against the mixed targets (which equals its two-term form, since the
    binary cross-entropy is linear in its target too)."""
    if check_criterion(criterion) == "cross_entropy":
        return mixup_cross_entropy(logits, batch, label_smoothing)
    return softmax_bce(logits, soft_targets(batch, logits.shape[1], label_smoothing))
