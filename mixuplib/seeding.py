"""Seeds: the global ones a run starts from, and the generators each epoch draws from.

A run of seed ``s`` draws, in epoch ``e``, from three CPU generators, each a function of
``(s, e)`` alone (and of the rank, for the mixing): one orders the data, one augments the
batches, one feeds the method (lambda, partners, ...). Because they are separate, turning the
augmentation on leaves every lambda where it was, and a run resumed at an epoch boundary draws
exactly what an uninterrupted run would.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["seed_everything", "EpochGenerators", "epoch_generators", "derived_seed"]


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch, and (by default) ask torch for deterministic kernels.

    With ``deterministic=True`` a CPU run is bit-for-bit repeatable; on a GPU it also
    picks deterministic cuDNN/cuBLAS kernels, at some cost in speed.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic


def derived_seed(seed: int, epoch: int, purpose: str, rank: int = 0) -> int:
    """A 63-bit seed for one purpose (``"order"``, ``"augment"``, ``"mixing"``, ``"model"``) in one
    epoch of a run, on one rank; stable across processes and Python versions (unlike ``hash``)."""
    for name, value in (("seed", seed), ("epoch", epoch), ("rank", rank)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if rank < 0:
        raise ValueError(f"rank must be an int >= 0, got {rank!r}")
    digest = hashlib.blake2b(f"mixuplib/{purpose}/{seed}/{epoch}/{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class EpochGenerators:
    """The generators of one epoch.

    Attributes:
        order: the data order; the same on every rank.
        augment: the batch augmentation (crop, flip); the same on every rank.
        mixing: the method's draws (lambda, partners, a manifold-mixup layer); one per rank.
    """

    order: torch.Generator
    augment: torch.Generator
    mixing: torch.Generator


def epoch_generators(seed: int, epoch: int, rank: int = 0) -> EpochGenerators:
    """The :class:`EpochGenerators` of epoch ``epoch`` of a run seeded ``seed``, on ``rank``."""
    def make(purpose: str, on_rank: int) -> torch.Generator:
        return torch.Generator().manual_seed(derived_seed(seed, epoch, purpose, on_rank))

    return EpochGenerators(order=make("order", 0), augment=make("augment", 0), mixing=make("mixing", rank))
