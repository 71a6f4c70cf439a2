"""The mixing core: draw a mixing coefficient, pair examples, mix them.

Everything random here is drawn from an explicit ``torch.Generator`` (a CPU one: the
few numbers drawn per batch are moved to the data's device), so a chapter that passes the
same generator state gets the same batch every time. Nothing reads or changes torch's
global random state.

As torchvision's transforms do, drawing and applying are apart: :func:`draw_mixing` draws the
lambda and the partners of a batch, :func:`mix` applies them. :func:`mixup` and :func:`cutmix`
do both for a caller, and check the values a caller passes in (a ``lam`` in [0, 1], an
``index`` that is a permutation). Values drawn here are never checked, and a method that builds
its own on the GPU (AdaMixup) applies them with :func:`mix`, so no training step reads a GPU
tensor back: nothing here waits for the GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

__all__ = ["MixedBatch", "sample_lambda", "draw_mixing", "mix", "mixup", "draw_box", "paste_box", "cutmix"]


@dataclass(frozen=True)
class MixedBatch:
    """A mixed batch and everything needed to build its targets.

    Attributes:
        x: the mixed inputs, same shape, dtype and device as the inputs.
        y_a: labels of the examples themselves, shape ``(B,)`` (class indices) or
            ``(B, K)`` (probabilities).
        y_b: labels of their partners ``y[index]``, same shape as ``y_a``.
        lam: weight of ``y_a``; a 0-d tensor (one lambda for the batch) or shape ``(B,)``
            (one per example), on the inputs' device, in ``[0, 1]``.
        index: the partner of each example, a permutation of ``range(B)``, shape ``(B,)``.
    """

    x: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: torch.Tensor
    index: torch.Tensor


def check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    return float(alpha)


def sample_lambda(alpha: float, size: int | tuple[int, ...] | None = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw mixing coefficients from Beta(alpha, alpha).

    Args:
        alpha: both Beta parameters; a finite number > 0. Small alpha (0.1-0.4) puts
            lambda near 0 or 1 (mild mixing); alpha = 1 is uniform; alpha > 1 pulls it
            towards 0.5.
        size: ``None`` for a single 0-d draw, an int or a shape for several.
        generator: a CPU ``torch.Generator``; ``None`` uses a fresh, unseeded one.

    Returns:
        A float64 CPU tensor of shape ``()`` or ``size`` with values in ``[0, 1]``. Float64,
        since at small alpha a good share of the draws lies within 1e-7 of 0 or 1, where
        float32 cannot tell them apart; :func:`mixup` casts to the inputs' dtype.
    """
    alpha = check_alpha(alpha)
    shape = () if size is None else ((size,) if isinstance(size, int) else tuple(size))
    # Beta(a, a) is the first coordinate of a Dirichlet(a, a) draw. torch.distributions.Beta
    # samples from the global generator; the Dirichlet kernel underneath it takes ours. It
    # draws in float64, since for small alpha both Gamma draws can be tiny (1e-50 at alpha = 0.1).
    return torch._sample_dirichlet(_concentration(alpha, shape), generator=generator).select(-1, 0)


@lru_cache(maxsize=64)
def _concentration(alpha: float, shape: tuple[int, ...]) -> torch.Tensor:
    """The Dirichlet parameters for :func:`sample_lambda`, made once per (alpha, shape): a
    training run asks for the same ones every step. Read only, never modified."""
    return torch.full((*shape, 2), alpha, dtype=torch.float64)


def _check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    if x.dim() < 1:
        raise ValueError(f"x must have a batch dimension, got shape {tuple(x.shape)}")
    if not isinstance(y, torch.Tensor) or y.dim() not in (1, 2):
        raise ValueError(
            f"y must be a tensor of class indices (B,) or of probabilities (B, K), got shape {tuple(getattr(y, 'shape', ()))}"
        )
    if y.dim() == 1 and (y.is_floating_point() or y.is_complex()):
        raise TypeError(f"y of shape (B,) must hold integer class indices, got dtype {y.dtype}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x and y must have the same batch size, got x: {x.shape[0]} and y: {y.shape[0]}")


def draw_mixing(batch_size: int, alpha: float, *, per_sample: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the partners and the lambda of one batch: ``(lam, index)``.

    Args:
        batch_size: ``B``, the examples in the batch.
        alpha: Beta(alpha, alpha) parameter for lambda; a finite number > 0.
        per_sample: one lambda per example instead of one for the batch.
        generator: CPU generator; the permutation is drawn first, then lambda.

    Returns:
        ``lam``, float64 on the CPU, shape ``()`` or ``(B,)``; ``index``, a CPU permutation of
        ``range(B)``, shape ``(B,)``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    index = torch.randperm(batch_size, generator=generator)
    lam = sample_lambda(alpha, (batch_size,) if per_sample else None, generator=generator)
    return lam, index


def mix(x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, index: torch.Tensor) -> MixedBatch:
    """Apply a drawn mixing: ``lam * x + (1 - lam) * x[index]``, labels paired alike.

    Works on any batch shape (images ``(B, C, H, W)``, sequences ``(B, L)``, hidden features
    ``(B, D)``), on any device and floating dtype. The inputs are never modified. The values
    of ``lam`` and ``index`` are taken as given (see :func:`mixup` for checked ones).

    Args:
        x: inputs ``(B, ...)``, floating point.
        y: labels, ``(B,)`` class indices or ``(B, K)`` probabilities.
        lam: weight of each example itself, a tensor of shape ``()`` or ``(B,)``, any device.
        index: each example's partner, an integer tensor of shape ``(B,)``, any device.

    Returns:
        A :class:`MixedBatch`, its ``lam`` and ``index`` on the inputs' device.
    """
    _check_batch(x, y)
    batch_size = x.shape[0]
    if not isinstance(lam, torch.Tensor) or tuple(lam.shape) not in ((), (batch_size,)):
        raise ValueError(f"lam must be a tensor of shape () or ({batch_size},), got {type(lam).__name__} "
                         f"of shape {tuple(getattr(lam, 'shape', ()))}")
    if not isinstance(index, torch.Tensor) or tuple(index.shape) != (batch_size,) or index.is_floating_point():
        raise ValueError(f"index must be an integer tensor of shape ({batch_size},), got {getattr(index, 'dtype', type(index))} "
                         f"of shape {tuple(getattr(index, 'shape', ()))}")
    per_sample = lam.dim() == 1
    if index.device != x.device:
        index = index.to(x.device, non_blocking=True)
    lam = lam.to(device=x.device, dtype=x.dtype, non_blocking=True)
    # One lambda on the CPU is passed as a number: lerp's scalar kernel, no 0-d tensor broadcast.
    weight = lam.view(-1, *([1] * (x.dim() - 1))) if per_sample else (float(lam) if lam.device.type == "cpu" else lam)
    # lerp(start, end, w) = start + w * (end - start): one fused pass over the batch.
    mixed = torch.lerp(x.index_select(0, index), x, weight)
    return MixedBatch(x=mixed, y_a=y, y_b=y.index_select(0, index), lam=lam, index=index)


def _index(index, batch_size: int, generator) -> torch.Tensor:
    """A caller's ``index``, checked, or a permutation drawn from ``generator``."""
    return torch.randperm(batch_size, generator=generator) if index is None else _checked_index(index, batch_size)


def _checked_index(index, batch_size: int) -> torch.Tensor:
    """A caller's ``index``, checked to be a permutation of ``range(batch_size)``."""
    if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.shape[0] != batch_size or index.is_floating_point():
        raise ValueError(
            f"index must be an integer tensor of shape ({batch_size},), a permutation of range({batch_size}); "
            f"got {getattr(index, 'dtype', type(index))} of shape {tuple(getattr(index, 'shape', ()))}"
        )
    if not _is_permutation(index, batch_size):
        raise ValueError(f"index must be a permutation of range({batch_size}), got {index.tolist()}")
    return index


def _is_permutation(index: torch.Tensor, n: int) -> bool:
    """Each of 0..n-1 exactly once: sorted, ``index`` is ``arange(n)``."""
    return torch.equal(index.sort().values, _arange(n, index.device, index.dtype))


@lru_cache(maxsize=16)
def _arange(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``arange(n)``, made once per batch size: the permutation check compares with it every step."""
    return torch.arange(n, device=device, dtype=dtype)


def _checked_lam(lam, shape: tuple[int, ...]) -> torch.Tensor:
    """A caller's ``lam`` as a tensor of ``shape`` at its own precision (float64 for numbers),
    checked to lie in [0, 1]."""
    if isinstance(lam, (int, float)) and not isinstance(lam, bool) and not shape:
        # A plain number: checked in Python, no tensor op (NaN fails the comparison too).
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must lie in [0, 1], got {lam!r}")
        return torch.tensor(float(lam), dtype=torch.float64)
    lam = torch.as_tensor(lam)
    if not lam.is_floating_point():
        lam = lam.to(torch.float64)
    if tuple(lam.shape) != shape:
        raise ValueError(f"lam must have shape {shape}, got {tuple(lam.shape)}")
    low, high = torch.aminmax(lam)  # NaN propagates and fails the comparison
    if not (float(low) >= 0.0 and float(high) <= 1.0):
        raise ValueError(f"lam must lie in [0, 1], got {lam.tolist()}")
    return lam


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 1.0,
    *,
    lam: float | torch.Tensor | None = None,
    index: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    per_sample: bool = False,
) -> MixedBatch:
    """Mix each example with a partner: ``lam * x + (1 - lam) * x[index]``.

    :func:`draw_mixing` then :func:`mix`, with a caller's ``lam`` or ``index`` in place of the
    draw. A given ``lam`` or ``index`` is checked (in [0, 1]; a permutation); a CUDA one is
    read back to the host for that, so a training step draws and mixes instead.

    Args:
        x: inputs, shape ``(B, ...)``, floating point.
        y: labels, ``(B,)`` class indices or ``(B, K)`` probabilities.
        alpha: Beta(alpha, alpha) parameter for lambda; a finite number > 0.
        lam: a fixed lambda in ``[0, 1]`` instead of a draw: a number, or shape ``(B,)``
            with ``per_sample=True``.
        index: a fixed pairing instead of a random permutation; shape ``(B,)``.
        generator: CPU generator for lambda and the permutation.
        per_sample: one lambda per example (``lam`` of shape ``(B,)``).

    Returns:
        A :class:`MixedBatch`.
    """
    _check_batch(x, y)
    alpha = check_alpha(alpha)
    batch_size = x.shape[0]
    shape = (batch_size,) if per_sample else ()
    if lam is None and index is None:
        lam, index = draw_mixing(batch_size, alpha, per_sample=per_sample, generator=generator)
    else:
        index = _index(index, batch_size, generator)
        lam = sample_lambda(alpha, shape or None, generator=generator) if lam is None else _checked_lam(lam, shape)
    return mix(x, y, lam, index)


def draw_box(height: int, width: int, lam: float, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """CutMix's box for a requested lambda: centre drawn uniformly, area ``(1 - lam) * H * W``
    before it is clipped at the border. Returns ``(y1, y2, x1, x2)``, the rows and columns it covers."""
    centre_x = int(torch.randint(width, (1,), generator=generator))
    centre_y = int(torch.randint(height, (1,), generator=generator))
    half = 0.5 * math.sqrt(1.0 - lam)
    half_w, half_h = int(half * width), int(half * height)
    return max(centre_y - half_h, 0), min(centre_y + half_h, height), max(centre_x - half_w, 0), min(centre_x + half_w, width)


def paste_box(x: torch.Tensor, y: torch.Tensor, box: tuple[int, int, int, int], index: torch.Tensor) -> MixedBatch:
    """Paste ``box`` of each partner ``x[index]`` into each image; ``lam`` is the share of each
    image that is still its own (the clipped box's area), a 0-d tensor, so the labels match the pixels."""
    y1, y2, x1, x2 = box
    height, width = x.shape[-2], x.shape[-1]
    index = index if index.device == x.device else index.to(x.device, non_blocking=True)
    mixed = x.clone()
    mixed[..., y1:y2, x1:x2] = x[..., y1:y2, x1:x2].index_select(0, index)
    effective = 1.0 - (x2 - x1) * (y2 - y1) / (width * height)
    lam = torch.tensor(effective, dtype=x.dtype, device=x.device)
    return MixedBatch(x=mixed, y_a=y, y_b=y.index_select(0, index), lam=lam, index=index)


def cutmix(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0, *, lam: float | torch.Tensor | None = None,
           index: torch.Tensor | None = None, generator: torch.Generator | None = None) -> MixedBatch:
    """Paste a random box of each partner ``x[index]`` into each example (Yun et al., 2019).

    The box has area ``(1 - lam) * H * W`` before it is clipped at the image border; the
    returned ``lam`` is the fraction of each image that is still its own, computed from the
    clipped box, so the labels match the pixels. One box serves the whole batch. The draws
    come in this order: the partners, lambda, the box (:func:`draw_box`); :func:`paste_box` applies them.

    Args:
        x: images, shape ``(B, C, H, W)`` (or ``(B, H, W)``), floating point.
        y: labels, ``(B,)`` class indices or ``(B, K)`` probabilities.
        alpha: Beta(alpha, alpha) parameter for the requested lambda; finite, > 0.
        lam: a fixed requested lambda in ``[0, 1]`` instead of a draw (checked).
        index: a fixed pairing instead of a random permutation; shape ``(B,)`` (checked).
        generator: CPU generator for lambda, the permutation and the box centre.

    Returns:
        A :class:`MixedBatch` whose ``lam`` is the effective (area) lambda, a 0-d tensor.
    """
    _check_batch(x, y)
    alpha = check_alpha(alpha)
    if x.dim() not in (3, 4):
        raise ValueError(f"x must be images of shape (B, C, H, W) or (B, H, W), got shape {tuple(x.shape)}")
    batch_size = x.shape[0]
    index = _index(index, batch_size, generator)
    requested = float(sample_lambda(alpha, generator=generator) if lam is None else _checked_lam(lam, ()))
    return paste_box(x, y, draw_box(x.shape[-2], x.shape[-1], requested, generator), index)
