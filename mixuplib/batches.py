"""Mini-batches over tensors, drawn with explicit generators, and the CIFAR augmentation.

The order of the batches comes from one generator the caller passes and every augmentation
draw from another, so the same generator states give the same epoch, on any device, and the
augmentation draws nothing from the order's stream.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch

__all__ = ["TensorBatches", "random_crop_flip"]


class TensorBatches:
    """Mini-batches over tensors, drawn in an order fixed by a generator.

    Calling the object with two ``torch.Generator`` (``order``, ``augment``) yields ``(x, y)``
    batches for one epoch; the same generator states give the same batches, which is what makes resumed runs
    identical to uninterrupted ones. Tensors stay on their device (put CIFAR on the GPU
    and the augmentation runs there too).

    Args:
        x: inputs ``(N, ...)``.
        y: labels ``(N,)`` or ``(N, K)``.
        batch_size: examples per batch.
        shuffle: draw a new order each epoch.
        drop_last: drop the last, smaller batch (mixing wants full batches).
        augment: ``augment(x_batch, generator) -> x_batch``, e.g. :func:`random_crop_flip`.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = True, drop_last: bool = False,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must have the same number of examples, got x: {x.shape[0]} and y: {y.shape[0]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.shuffle, self.drop_last, self.augment = shuffle, drop_last, augment

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __call__(self, order: torch.Generator | None = None,
                 augment: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch's batches: the order drawn from ``order``, the augmentation from ``augment``
        (``None``: fresh, unseeded generators)."""
        n = self.x.shape[0]
        rows = torch.randperm(n, generator=order).to(self.x.device, non_blocking=True) if self.shuffle else torch.arange(n, device=self.x.device)
        for i in range(len(self)):
            idx = rows[i * self.batch_size:(i + 1) * self.batch_size]
            xb = self.x[idx]
            if self.augment is not None:
                xb = self.augment(xb, augment)
            yield xb, self.y[idx]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4, flip: bool = True) -> torch.Tensor:
    """The CIFAR papers' augmentation on a whole batch: zero-pad, random crop, random h-flip.

    Args:
        x: images ``(B, C, H, W)`` on any device.
        generator: CPU generator for the offsets and flips.
        padding: pixels of zero padding on each side (4 in the papers).
        flip: also flip each image left-right with probability 1/2.

    Returns:
        ``(B, C, H, W)``, a new tensor.
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator).to(x.device, non_blocking=True)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator).to(x.device, non_blocking=True)
    rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = padded[batch, channel, rows, cols]
    if flip:
        flipped = torch.rand(b, generator=generator).lt(0.5).to(x.device, non_blocking=True)[:, None, None, None]
        out = torch.where(flipped, out.flip(-1), out)
    return out
