"""Adversarial examples: FGSM and iterative FGSM (I-FGSM, PGD-style with projection).

Both are white-box gradient attacks under an L-infinity budget ``eps``; a black-box
(transfer) attack crafts the examples on one model and evaluates them on another, which is
just calling these with the source model. Inputs may be standardised: ``bounds`` gives the
valid range of each input value in the model's units, and every adversarial example is kept
inside it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["fgsm", "ifgsm", "adversarial_error"]


def _check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> None:
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")


def _gradient_sign(model, x, y):
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def _in_bounds(x, bounds):
    return x if bounds is None else x.clamp(*bounds)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, bounds: tuple[float, float] | None = None) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al., 2015): ``x + eps * sign(grad_x CE)``.

    Args:
        model: the attacked classifier (its mode is left as it is: call ``model.eval()`` first).
        x: inputs ``(B, ...)``; y: their labels ``(B,)``.
        eps: L-infinity budget, in the units of ``x``.
        bounds: ``(low, high)`` valid input range, or None.

    Returns:
        Adversarial inputs ``(B, ...)``, detached.
    """
    _check(model, x, y, eps)
    return _in_bounds(x + eps * _gradient_sign(model, x, y), bounds).detach()


def ifgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10, step_size: float | None = None,
          bounds: tuple[float, float] | None = None, random_start: bool = False,
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
