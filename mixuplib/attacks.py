"""Adversarial examples: FGSM and iterative FGSM (I-FGSM, PGD-style with projection).

Both are white-box gradient attacks under an L-infinity budget ``eps``; a black-box
(transfer) attack crafts the examples on one model and evaluates them on another, which is
just calling these with the source model. Inputs may be standardised: ``bounds`` gives the
valid range of each input value in the model's units, and every adversarial example is kept
inside it. :class:`PixelUnits` converts budgets stated in pixels to those units, channel by
channel, and gives the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PixelUnits", "fgsm", "ifgsm", "adversarial_error"]

Budget = float | torch.Tensor  # one number, or one per channel, shape (C, 1, 1)
Bounds = tuple[float, float] | tuple[torch.Tensor, torch.Tensor]


def _per_channel(name: str, value: float | Sequence[float]) -> float | torch.Tensor:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a list of numbers, one per channel, got {value!r}") from None
    if not values:
        raise ValueError(f"{name} must list one number per channel, got an empty list")
    return torch.tensor(values, dtype=torch.float64).view(-1, 1, 1)


@dataclass(frozen=True)
class PixelUnits:
    """A model's inputs as standardised pixels: ``x = (pixel - mean) / std``, pixels in [0, 1].

    ``mean`` and ``std`` are one number for every channel, or one per channel (CIFAR's
    per-channel statistics); budgets and bounds are then per channel, shape ``(C, 1, 1)``,
    float32. Arithmetic is done in float64 and rounded once, so one number gives exactly
    what Python's float arithmetic would.
    """

    mean: float | Sequence[float]
    std: float | Sequence[float]

    def __post_init__(self):
        mean, std = _per_channel("mean", self.mean), _per_channel("std", self.std)
        if isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor) and mean.shape != std.shape:
            raise ValueError(f"mean and std must have one number per channel each, got {mean.numel()} and {std.numel()}")
        if not bool(torch.as_tensor(std).gt(0).all()):
            raise ValueError(f"std must be > 0, got {self.std!r}")
        object.__setattr__(self, "_mean", mean)
        object.__setattr__(self, "_std", std)

    def _cast(self, value):
        return value.float() if isinstance(value, torch.Tensor) else value

    def budget(self, eps: float) -> Budget:
        """A budget of ``eps`` pixels in the model's units: ``eps / std``."""
        return self._cast(eps / self._std)

    @property
    def bounds(self) -> Bounds:
        """``(low, high)``: the valid pixels 0 and 1 in the model's units."""
        return self._cast((0 - self._mean) / self._std), self._cast((1 - self._mean) / self._std)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs ``(..., C, H, W)`` back to pixels."""
        return x * self._cast(self._std) + self._cast(self._mean)

    def pixel_gradient(self, grad: torch.Tensor) -> torch.Tensor:
        """A gradient with respect to the model's inputs ``(..., C, H, W)`` as one with respect
        to the pixels (the chain rule through the standardisation): ``grad / std``."""
        return grad / self._cast(self._std)


def _check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Budget) -> None:
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if not bool(torch.as_tensor(eps).ge(0).all()):  # NaN fails too
        raise ValueError(f"eps must be >= 0, got {eps!r}")


def _gradient_sign(model, x, y):
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def _in_bounds(x, bounds):
    return x if bounds is None else x.clamp(*bounds)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Budget, *, bounds: Bounds | None = None) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al., 2015): ``x + eps * sign(grad_x CE)``.

    Args:
        model: the attacked classifier (its mode is left as it is: call ``model.eval()`` first).
        x: inputs ``(B, ...)``; y: their labels ``(B,)``.
        eps: L-infinity budget, in the units of ``x``: a number, or one per channel ``(C, 1, 1)``
            (:meth:`PixelUnits.budget`).
        bounds: ``(low, high)`` valid input range, numbers or per channel
            (:attr:`PixelUnits.bounds`), or None.

    Returns:
        Adversarial inputs ``(B, ...)``, detached.
    """
    _check(model, x, y, eps)
    return _in_bounds(x + eps * _gradient_sign(model, x, y), bounds).detach()


def ifgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Budget, *, steps: int = 10,
          step_size: Budget | None = None, bounds: Bounds | None = None, random_start: bool = False,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """Iterative FGSM (Kurakin et al., 2017): ``steps`` signed-gradient steps of ``step_size``,
    each followed by projection onto the L-infinity ball of radius ``eps`` around ``x`` (and onto
    ``bounds``). With ``random_start`` it starts from a uniform point of the ball: that is PGD
    (Madry et al., 2018).

    Args:
        steps: number of steps (10 in the mixup paper).
        step_size: per-step size; default ``2.5 * eps / steps`` (Madry et al.), large enough to
            reach the boundary of the ball and then move along it.
        generator: CPU generator for the random start.

    Returns:
        Adversarial inputs ``(B, ...)``, detached, with ``|x_adv - x| <= eps`` everywhere.
    """
    _check(model, x, y, eps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    step_size = 2.5 * eps / steps if step_size is None else step_size
    x = x.detach()
    adv = x
    if random_start:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        adv = _in_bounds(x + eps * (2 * noise - 1), bounds)
    for _ in range(steps):
        adv = adv + step_size * _gradient_sign(model, adv, y)
        adv = _in_bounds(torch.min(torch.max(adv, x - eps), x + eps), bounds)
    return adv.detach()


@torch.no_grad()
def adversarial_error(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 error (%) of ``model`` in eval mode on ``x_adv``."""
    was_training = model.training
    model.eval()
    wrong = sum(int((model(x_adv[i:i + batch_size]).argmax(1) != y[i:i + batch_size]).sum())
                for i in range(0, len(y), batch_size))
    model.train(was_training)
    return 100.0 * wrong / len(y)
