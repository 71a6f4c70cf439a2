"""torchvision's MixUp and CutMix driven with our draws, so their output can be compared with ours.

``torchvision.transforms.v2.MixUp`` and ``CutMix`` draw lambda from a Beta distribution they
hold (the private attribute ``_dist``) and pair each example with the next one in the batch
(a roll by one). :func:`use_lambda` replaces that distribution with one that returns a lambda
we drew, which is what the tests and chapter 2 need to check mixuplib against them.
"""

from __future__ import annotations

import torch

__all__ = ["FixedBeta", "use_lambda"]


class FixedBeta:
    """Stands in for torchvision's Beta distribution: every sample is ``lam``."""

    def __init__(self, lam: float | torch.Tensor):
        self.lam = torch.as_tensor(lam)

    def sample(self, shape=()) -> torch.Tensor:
        return self.lam.reshape(1)


def use_lambda(transform, lam: float | torch.Tensor):
    """``transform`` (a ``v2.MixUp`` or ``v2.CutMix``) made to use ``lam``; returns it."""
    if not hasattr(transform, "_dist"):
        raise TypeError(f"transform must be torchvision's v2.MixUp or v2.CutMix (with a _dist), got {type(transform).__name__}")
    transform._dist = FixedBeta(lam)
    return transform
