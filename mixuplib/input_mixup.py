"""Input mixup, CutMix and the switch between them as training methods: mix the batch, score against both labels."""

from __future__ import annotations

import math

import torch

from .losses import check_criterion, mixup_cross_entropy, mixup_loss
from .mixing import check_alpha, cutmix, mixup
from .method import Method

__all__ = ["InputMixup", "CutMix", "MixUpCutMix"]


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


class MixUpCutMix(Method):
    """The switch today's image recipes train with: each batch is mixed by CutMix with probability
    ``switch_prob``, else by input mixup, each with its own Beta parameter. torchvision's
    classification references draw one of ``v2.MixUp`` and ``v2.CutMix`` per batch
    (``v2.RandomChoice``, equal odds); timm's ``Mixup`` does the same with ``switch_prob``
    (0.5 by default) in its per-batch mode.

    Args:
        mixup_alpha: Beta parameter of the mixup batches (torchvision's ResNet-50 recipe: 0.2).
        cutmix_alpha: Beta parameter of the CutMix batches (1.0 in that recipe).
        switch_prob: probability that a batch is a CutMix batch, in ``[0, 1]``.
        label_smoothing: smoothing of each one-hot label before mixing.
    """

    def __init__(self, mixup_alpha: float = 0.2, cutmix_alpha: float = 1.0, *, switch_prob: float = 0.5,
                 label_smoothing: float = 0.0):
        super().__init__()
        self.mixup_alpha, self.cutmix_alpha = check_alpha(mixup_alpha), check_alpha(cutmix_alpha)
        if isinstance(switch_prob, bool) or not isinstance(switch_prob, (int, float)) or not math.isfinite(switch_prob) \
                or not 0.0 <= switch_prob <= 1.0:
            raise ValueError(f"switch_prob must be a probability in [0, 1], got {switch_prob!r}")
        self.switch_prob, self.label_smoothing = float(switch_prob), label_smoothing

    def loss(self, model, x, y, generator):
        # The coin comes first from the run's generator, then the chosen method's own draws.
        if float(torch.rand((), generator=generator)) < self.switch_prob:
            batch = cutmix(x, y, self.cutmix_alpha, generator=generator)
        else:
            batch = mixup(x, y, self.mixup_alpha, generator=generator)
        return mixup_cross_entropy(model(batch.x), batch, self.label_smoothing)

    def extra_repr(self) -> str:
        return (f"mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, switch_prob={self.switch_prob}, "
                f"label_smoothing={self.label_smoothing}")
