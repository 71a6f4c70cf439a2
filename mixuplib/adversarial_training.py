"""Adversarial training (Madry et al., 2018) as a training method: train on PGD's examples.

It minimises over the weights the loss at the worst point of the L-infinity ball around each
training example, ``min_theta E max_{|delta| <= eps} loss(f(x + delta), y)``, with the inner
maximum approximated by PGD (:func:`mixuplib.attacks.ifgsm` with a random start). The defence
that mixup is measured against.
"""

from __future__ import annotations

import torch.nn.functional as F

from .attacks import Bounds, Budget, ifgsm
from .method import Method

__all__ = ["AdversarialTraining"]


class AdversarialTraining(Method):
    """Train on PGD adversarial examples of each batch, with the cross-entropy.

    The examples are crafted with the model in eval mode, so the attack's extra passes neither
    move the batch-norm statistics nor draw dropout; the training pass then runs as usual. The
    random start draws from the loop's mixing generator, so a run is reproducible.

    Args:
        eps: L-infinity budget in the model's input units: a number, or one per channel
            (:meth:`mixuplib.attacks.PixelUnits.budget`).
        steps: PGD steps per training step (7 in Madry et al.'s CIFAR-10 training).
        step_size: each step's size; default ``2.5 * eps / steps``.
        bounds: the valid input range (:attr:`mixuplib.attacks.PixelUnits.bounds`), or None.
    """

    def __init__(self, eps: Budget, *, steps: int = 7, step_size: Budget | None = None, bounds: Bounds | None = None):
        super().__init__()
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        self.eps, self.steps, self.step_size, self.bounds = eps, steps, step_size, bounds

    def loss(self, model, x, y, generator):
        was_training = model.training
        model.eval()
        try:
            adversarial = ifgsm(model, x, y, self.eps, steps=self.steps, step_size=self.step_size, bounds=self.bounds,
                                random_start=True, generator=generator)
        finally:
            model.train(was_training)
        return F.cross_entropy(model(adversarial), y)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, steps={self.steps}, step_size={self.step_size}, bounds={self.bounds}"
