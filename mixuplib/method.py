"""The interface every training method implements, and ERM, the method that mixes nothing.

A *method* (ERM, input mixup, manifold mixup, AdaMixup, ...) is a :class:`Method`: an
``nn.Module`` whose ``loss(model, x, y, generator)`` turns a batch into a training loss.
Its own parameters, if it has any (AdaMixup's generator), are trained alongside the model's
and saved in the same checkpoint. The training loop knows nothing else about it.
"""

from __future__ import annotations

import torch
from torch import nn

from .losses import check_criterion, label_loss

__all__ = ["Method", "ERM"]


class Method(nn.Module):
    """How one training step turns a batch into a loss. Subclasses implement :meth:`loss`."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training loss of ``model`` on the batch ``x`` ``(B, ...)``, ``y`` ``(B,)``; a 0-d tensor.
        ``generator`` is the epoch's mixing generator: every random draw of the method comes from it."""
        raise NotImplementedError

    def epoch_end(self, epoch: int) -> dict[str, float]:
        """Numbers to record in the history after each epoch (e.g. a learned lambda range)."""
        return {}

    def readouts(self) -> dict[str, nn.Module]:
        """Networks besides the trained model that a study scores too, ``{name: network}``: a
        mean teacher or a moving average of the weights, which some papers report instead of
        the model itself. None by default."""
        return {}


class ERM(Method):
    """Empirical risk minimisation: the loss of the batch as it is.

    Args:
        label_smoothing: smoothing of each one-hot label.
        criterion: ``"cross_entropy"``, or ``"softmax_bce"`` as Verma et al.'s code trains
            (:data:`mixuplib.losses.CRITERIA`).
    """

    def __init__(self, label_smoothing: float = 0.0, *, criterion: str = "cross_entropy"):
        super().__init__()
        self.label_smoothing, self.criterion = label_smoothing, check_criterion(criterion)

    def loss(self, model, x, y, generator):
        return label_loss(model(x), y, self.criterion, self.label_smoothing)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}, criterion={self.criterion!r}"
