"""Metrics computed from logits: error, negative log-likelihood, calibration; and the registry
:data:`METRICS` of the metrics chapters compare (unit, precision, per-example form)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

__all__ = ["classification_metrics", "reliability_bins", "ReliabilityBins", "Metric", "METRICS", "metric",
           "per_example_error", "per_example_nll"]


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin calibration statistics (bins of equal width over confidence in [0, 1]).

    Attributes:
        edges: ``(n_bins + 1,)`` bin edges.
        confidence: ``(n_bins,)`` mean top-1 confidence of the examples in each bin.
        accuracy: ``(n_bins,)`` top-1 accuracy in each bin.
        count: ``(n_bins,)`` number of examples in each bin.
    """

    edges: torch.Tensor
    confidence: torch.Tensor
    accuracy: torch.Tensor
    count: torch.Tensor

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean absolute gap between accuracy and confidence."""
        weights = self.count / self.count.sum().clamp_min(1)
        return float((weights * (self.accuracy - self.confidence).abs()).sum())


def _check(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, K), got {tuple(logits.shape)}")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")


def reliability_bins(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> ReliabilityBins:
    """Bin predictions by top-1 confidence for a reliability diagram and the ECE.

    Args:
        logits: ``(N, K)``.
        labels: ``(N,)`` class indices.
        n_bins: number of equal-width bins (15, as in Guo et al., 2017).
    """
    _check(logits, labels)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    probs = F.softmax(logits.float(), dim=-1)
    confidence, predicted = probs.max(dim=-1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, n_bins + 1, device=logits.device)
    # Confidence 1.0 belongs to the last bin, not to a bin of its own.
    bin_of = torch.bucketize(confidence, edges[1:-1], right=True)
    count = torch.bincount(bin_of, minlength=n_bins).float()
    safe = count.clamp_min(1)
    conf_mean = torch.bincount(bin_of, weights=confidence, minlength=n_bins) / safe
    acc_mean = torch.bincount(bin_of, weights=correct, minlength=n_bins) / safe
    return ReliabilityBins(edges.cpu(), conf_mean.cpu(), acc_mean.cpu(), count.cpu())


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, float]:
    """Top-1 error (%), mean negative log-likelihood (nats) and ECE (%) of a set of predictions.

    Args:
        logits: ``(N, K)``.
        labels: ``(N,)`` class indices.

    Returns:
        ``{"error": ..., "nll": ..., "ece": ...}`` as Python floats.
    """
    _check(logits, labels)
    logits = logits.float()
    error = 100.0 * float((logits.argmax(dim=-1) != labels).float().mean())
    nll = float(F.cross_entropy(logits, labels))
    ece = 100.0 * reliability_bins(logits, labels, n_bins).ece
    return {"error": error, "nll": nll, "ece": ece}


def per_example_error(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(N,)``: 100 where the top-1 prediction is wrong, else 0; its mean is the error in %."""
    _check(logits, labels)
    return 100.0 * (logits.argmax(dim=-1) != labels).float()


def per_example_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(N,)``: each example's negative log-likelihood in nats; its mean is the NLL."""
    _check(logits, labels)
    return F.cross_entropy(logits.float(), labels, reduction="none")


@dataclass(frozen=True)
class Metric:
    """How the book names, prints and compares one metric.

    Attributes:
        words: the metric in a sentence, e.g. ``"test error"``.
        unit: printed after a value, e.g. ``" %"`` (empty for none).
        precision: decimals printed.
        per_example: ``(logits (N, K), labels (N,)) -> (N,)`` whose mean is the metric, for a
            metric measured on a finite test set, so that intervals can cover the test
            examples (:func:`mixuplib.stats.paired`); ``None`` for one number per run (ECE,
            which bins the whole set; a training loss).
    """

    words: str
    unit: str
    precision: int
    per_example: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None


METRICS: dict[str, Metric] = {
    "test_error": Metric("test error", " %", 2, per_example_error),
    "test_nll": Metric("test NLL", "", 3, per_example_nll),
    "test_ece": Metric("test ECE", " %", 2),
    "train_loss": Metric("training loss", "", 3),
}


def metric(name: str) -> Metric:
    """The registered :class:`Metric` called ``name`` (a key of :data:`METRICS`)."""
    if name not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {name!r}")
    return METRICS[name]
