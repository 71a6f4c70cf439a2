"""The mixing core: draw a mixing coefficient, pair examples, mix them.

Everything random here is drawn from an explicit ``torch.Generator`` (a CPU one: the
few numbers drawn per batch are moved to the data's device), so a chapter that passes the
same generator state gets the same batch every time. Nothing reads or changes torch's
global random state.

Nothing here waits for the GPU. Shapes, dtypes and devices are always checked (they need no
read of device memory); the *values* of a caller's ``lam`` and ``index`` (in [0, 1], a
permutation) are checked when they live on the CPU, or when the caller asks with
``validate=True``. A check of a CUDA tensor's values copies it to the host, which stalls the
pipeline once per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

__all__ = ["MixedBatch", "sample_lambda", "mixup", "cutmix"]


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


def _check_validate(validate) -> None:
    if validate is not None and not isinstance(validate, bool):
        raise ValueError(f"validate must be None (check values on the CPU only), True or False, got {validate!r}")


def _values_checked(tensor: torch.Tensor, validate: bool | None) -> bool:
    """Whether to check a tensor's values: on request, or by default where it costs no sync."""
    return tensor.device.type == "cpu" if validate is None else validate


def _resolve_index(index, batch_size: int, device, generator, validate: bool | None = None) -> torch.Tensor:
    if index is None:
        index = torch.randperm(batch_size, generator=generator)
        return index if index.device == device else index.to(device, non_blocking=True)
    if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.shape[0] != batch_size or index.is_floating_point():
        raise ValueError(
            f"index must be an integer tensor of shape ({batch_size},), a permutation of range({batch_size}); "
            f"got {getattr(index, 'dtype', type(index))} of shape {tuple(getattr(index, 'shape', ()))}"
        )
    if _values_checked(index, validate) and not _is_permutation(index, batch_size):
        raise ValueError(f"index must be a permutation of range({batch_size}), got {index.tolist()}")
    return index if index.device == device else index.to(device)


def _is_permutation(index: torch.Tensor, n: int) -> bool:
    """Each of 0..n-1 exactly once: sorted, ``index`` is ``arange(n)``."""
    return torch.equal(index.sort().values, _arange(n, index.device, index.dtype))


@lru_cache(maxsize=16)
def _arange(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``arange(n)``, made once per batch size: the permutation check compares with it every step."""
    return torch.arange(n, device=device, dtype=dtype)


def _resolve_lam(lam, alpha, shape, generator, validate: bool | None = None) -> torch.Tensor:
    """The lambda to use as a tensor: drawn (float64, on the CPU), or checked if given."""
    if lam is None:
        return sample_lambda(alpha, shape, generator=generator)
    check_alpha(alpha)
    if isinstance(lam, (int, float)) and not isinstance(lam, bool) and not shape:
        # A plain number: checked in Python, no tensor op (NaN fails the comparison too).
        if validate is not False and not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must lie in [0, 1], got {lam!r}")
        return torch.tensor(float(lam), dtype=torch.float64)
    # Kept at its own precision (float64 for numbers); mixup casts it to the inputs' dtype once.
    lam = torch.as_tensor(lam)
    if not lam.is_floating_point():
        lam = lam.to(torch.float64)
    if tuple(lam.shape) != tuple(shape or ()):
        raise ValueError(f"lam must have shape {tuple(shape or ())}, got {tuple(lam.shape)}")
    if _values_checked(lam, validate):
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
    validate: bool | None = None,
) -> MixedBatch:
    """Mix each example with a partner: ``lam * x + (1 - lam) * x[index]``.

    Works on any batch shape (images ``(B, C, H, W)``, sequences ``(B, L)``, hidden features
    ``(B, D)``), on any device and floating dtype. The inputs are never modified.

    Args:
        x: inputs, shape ``(B, ...)``, floating point.
        y: labels, ``(B,)`` class indices or ``(B, K)`` probabilities.
        alpha: Beta(alpha, alpha) parameter for lambda; a finite number > 0.
        lam: a fixed lambda in ``[0, 1]`` instead of a draw: a number, or shape ``(B,)``
            with ``per_sample=True``.
        index: a fixed pairing instead of a random permutation; shape ``(B,)``.
        generator: CPU generator for lambda and the permutation.
        per_sample: draw one lambda per example (``lam`` of shape ``(B,)``).
        validate: check the values of a given ``lam`` and ``index``: ``None`` (default) where
            they are CPU tensors or numbers, ``True`` always (a host sync on a GPU), ``False``
            never (callers that build them valid, e.g. AdaMixup).

    Returns:
        A :class:`MixedBatch`.
    """
    _check_batch(x, y)
    _check_validate(validate)
    batch_size = x.shape[0]
    index = _resolve_index(index, batch_size, x.device, generator, validate)
    lam = _resolve_lam(lam, alpha, (batch_size,) if per_sample else None, generator, validate)
    lam = lam.to(device=x.device, dtype=x.dtype, non_blocking=True)
    # One lambda on the CPU is passed as a number: lerp's scalar kernel, no 0-d tensor broadcast.
    weight = lam.view(-1, *([1] * (x.dim() - 1))) if per_sample else (float(lam) if lam.device.type == "cpu" else lam)
    # lerp(start, end, w) = start + w * (end - start): one fused pass over the batch.
    mixed = torch.lerp(x.index_select(0, index), x, weight)
    return MixedBatch(x=mixed, y_a=y, y_b=y.index_select(0, index), lam=lam, index=index)


def cutmix(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0, *, lam: float | torch.Tensor | None = None,
           index: torch.Tensor | None = None, generator: torch.Generator | None = None,
           validate: bool | None = None) -> MixedBatch:
    """Paste a random box of each partner ``x[index]`` into each example (Yun et al., 2019).

    The box has area ``(1 - lam) * H * W`` before it is clipped at the image border; the
    returned ``lam`` is the fraction of each image that is still its own, computed from the
    clipped box, so the labels match the pixels. One box serves the whole batch.

    Args:
        x: images, shape ``(B, C, H, W)`` (or ``(B, H, W)``), floating point.
        y: labels, ``(B,)`` class indices or ``(B, K)`` probabilities.
        alpha: Beta(alpha, alpha) parameter for the requested lambda; finite, > 0.
        lam: a fixed requested lambda in ``[0, 1]`` instead of a draw.
        index: a fixed pairing instead of a random permutation; shape ``(B,)``.
        generator: CPU generator for lambda, the permutation and the box centre.
        validate: as in :func:`mixup`.

    Returns:
        A :class:`MixedBatch` whose ``lam`` is the effective (area) lambda, a 0-d tensor.
    """
    _check_batch(x, y)
    _check_validate(validate)
    if x.dim() not in (3, 4):
        raise ValueError(f"x must be images of shape (B, C, H, W) or (B, H, W), got shape {tuple(x.shape)}")
    batch_size, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    index = _resolve_index(index, batch_size, x.device, generator, validate)
    requested = float(_resolve_lam(lam, alpha, None, generator, validate))
    centre_x = int(torch.randint(width, (1,), generator=generator))
    centre_y = int(torch.randint(height, (1,), generator=generator))
    half = 0.5 * math.sqrt(1.0 - requested)
    half_w, half_h = int(half * width), int(half * height)
    x1, x2 = max(centre_x - half_w, 0), min(centre_x + half_w, width)
    y1, y2 = max(centre_y - half_h, 0), min(centre_y + half_h, height)
    mixed = x.clone()
    mixed[..., y1:y2, x1:x2] = x[..., y1:y2, x1:x2].index_select(0, index)
    effective = 1.0 - (x2 - x1) * (y2 - y1) / (width * height)
    lam_t = torch.tensor(effective, dtype=x.dtype, device=x.device)
    return MixedBatch(x=mixed, y_a=y, y_b=y.index_select(0, index), lam=lam_t, index=index)
