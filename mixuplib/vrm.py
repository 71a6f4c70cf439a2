"""Vicinal risk minimisation with Gaussian vicinities (Chapelle et al., 2000)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .method import Method

__all__ = ["GaussianVRM", "gaussian_vicinity"]


def gaussian_vicinity(x: torch.Tensor, sigma: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one point from ``N(x_i, sigma^2 I)`` around every example.

    Args:
        x: inputs ``(B, ...)``, floating point.
        sigma: standard deviation of the vicinity, >= 0.
        generator: CPU generator for the noise.

    Returns:
        ``(B, ...)``, a new tensor; the label of each draw is the label of its ``x_i``.
    """
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + sigma * noise.to(x.device, non_blocking=True)


class GaussianVRM(Method):
    """Train on a fresh Gaussian draw around each example, keeping its label."""

    def __init__(self, sigma: float):
        super().__init__()
        gaussian_vicinity(torch.zeros(1), sigma)  # validates sigma now, not at the first step
        self.sigma = sigma

    def loss(self, model, x, y, generator):
        return F.cross_entropy(model(gaussian_vicinity(x, self.sigma, generator=generator)), y)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"
