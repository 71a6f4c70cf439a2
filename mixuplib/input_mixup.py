"""Input mixup and CutMix as training methods: mix the batch, score against both labels."""

from __future__ import annotations

from .losses import check_criterion, mixup_cross_entropy, mixup_loss
from .mixing import check_alpha, cutmix, mixup
from .method import Method

__all__ = ["InputMixup", "CutMix"]


class InputMixup(Method):
    """Input mixup (Zhang et al., 2018): train on ``lam * x_i + (1 - lam) * x_j`` against
    ``lam * y_i + (1 - lam) * y_j``, with ``lam ~ Beta(alpha, alpha)`` and ``j`` a random
    permutation of the batch.

    Args:
        alpha: Beta parameter (1.0 in the paper's CIFAR runs).
        per_sample: one lambda per example instead of one per batch.
        label_smoothing: smoothing of each one-hot label before mixing.
        criterion: ``"cross_entropy"`` or ``"softmax_bce"`` (:func:`mixuplib.losses.mixup_loss`).
    """

    def __init__(self, alpha: float = 1.0, *, per_sample: bool = False, label_smoothing: float = 0.0,
                 criterion: str = "cross_entropy"):
        super().__init__()
        self.alpha = check_alpha(alpha)
        self.per_sample, self.label_smoothing, self.criterion = per_sample, label_smoothing, check_criterion(criterion)

    def loss(self, model, x, y, generator):
        batch = mixup(x, y, self.alpha, generator=generator, per_sample=self.per_sample)
        return mixup_loss(model(batch.x), batch, self.criterion, self.label_smoothing)

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, per_sample={self.per_sample}, label_smoothing={self.label_smoothing}, "
                f"criterion={self.criterion!r}")


class CutMix(Method):
    """CutMix (Yun et al., 2019): paste a box of the partner image; labels weighted by area.

    Args:
        alpha: Beta parameter for the requested box area (1.0 in the paper).
        label_smoothing: smoothing of each one-hot label before mixing.
    """

    def __init__(self, alpha: float = 1.0, *, label_smoothing: float = 0.0):
        super().__init__()
        self.alpha = check_alpha(alpha)
        self.label_smoothing = label_smoothing

    def loss(self, model, x, y, generator):
        batch = cutmix(x, y, self.alpha, generator=generator)
        return mixup_cross_entropy(model(batch.x), batch, self.label_smoothing)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, label_smoothing={self.label_smoothing}"
