"""Manifold mixup (Verma et al., 2019): mix hidden states at a randomly chosen layer.

The model is any ``nn.Sequential`` of stages (see :mod:`mixuplib.models`); mixing "at
layer k" means running ``model[:k]``, mixing its output, and running ``model[k:]`` on the
mix. Layer 0 is the input, so ``k = 0`` is input mixup. The model knows nothing of mixup.
"""

from __future__ import annotations

import torch
from torch import nn

from .losses import check_criterion, mixup_loss
from .mixing import MixedBatch, check_alpha, mixup
from .method import Method

__all__ = ["ManifoldMixup", "mix_at_layer", "check_layers"]


def check_layers(layers, model: nn.Sequential) -> tuple[int, ...]:
    """The eligible layers as a tuple, or ValueError: ints in ``[0, len(model) - 1]``, at least one.

    The last stage is the classifier head: mixing its output would mix logits, not features.
    """
    top = len(model) - 1
    layers = tuple(layers) if not isinstance(layers, int) else (layers,)
    if not layers or any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= top for k in layers):
        raise ValueError(f"layers must be a non-empty set of ints in [0, {top}] for a model of {len(model)} stages, got {layers!r}")
    return layers


def mix_at_layer(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, layer: int, alpha: float = 2.0, *,
                 lam=None, index=None, generator: torch.Generator | None = None) -> tuple[torch.Tensor, MixedBatch]:
    """Run ``model`` on ``x`` with the hidden state after ``model[:layer]`` mixed.

    Args:
        model: an ``nn.Sequential`` of stages.
        x: inputs ``(B, ...)``; y: labels ``(B,)``.
        layer: where to mix; 0 mixes the inputs.
        alpha, lam, index, generator: as in :func:`mixuplib.mixing.mixup`.

    Returns:
        ``(logits, batch)``: logits ``(B, K)`` of the mixed hidden states, and the
        :class:`~mixuplib.mixing.MixedBatch` of those states (its ``x`` is the mixed hidden state).
    """
    (layer,) = check_layers((layer,), model)
    batch = mixup(model[:layer](x), y, alpha, lam=lam, index=index, generator=generator)
    return model[layer:](batch.x), batch


class ManifoldMixup(Method):
    """Manifold mixup: each step mixes at a layer drawn uniformly from ``layers``.

    Args:
        alpha: Beta parameter (2.0 in the paper: lambda concentrates near 0.5).
        layers: eligible layers; ``(0, 1, 2)`` is the paper's {input, after block 1, after block 2}.
        criterion: ``"cross_entropy"``, or ``"softmax_bce"``, the loss of the official code
            (:func:`mixuplib.losses.mixup_loss`).
    """

    def __init__(self, alpha: float = 2.0, layers=(0, 1, 2), *, criterion: str = "cross_entropy"):
        super().__init__()
        self.alpha = check_alpha(alpha)
        self.layers = tuple(layers)
        self.criterion = check_criterion(criterion)

    def loss(self, model, x, y, generator):
        layers = check_layers(self.layers, model)
        layer = layers[int(torch.randint(len(layers), (), generator=generator))]
        logits, batch = mix_at_layer(model, x, y, layer, self.alpha, generator=generator)
        return mixup_loss(logits, batch, self.criterion)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, layers={self.layers}, criterion={self.criterion!r}"
