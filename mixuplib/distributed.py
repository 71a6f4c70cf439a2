"""What :func:`mixuplib.train.fit` does differently inside a process group: one process per GPU.

Each process (a *rank*) holds a copy of the model and trains on its own slice of every
global batch; DistributedDataParallel (DDP) averages the gradients over the ranks after each
backward pass, so every rank takes the same optimiser step and the copies stay identical.
``fit`` detects the process group itself, as nanoGPT does; nothing else changes for the caller.

- The data order and the augmentation come from generators shared by all ranks
  (:func:`~mixuplib.seeding.epoch_generators`): every rank draws the same global batch and keeps
  its contiguous slice (:class:`ShardedBatches`), so 2 ranks with 64 examples each see the
  very 128 examples a 1-rank run with batch 128 sees. Under ERM, whose loss draws nothing,
  the two runs end with the same weights up to float round-off.
- Each rank mixes within its own slice, as the mixup paper's multi-GPU ImageNet runs did:
  partners never cross a rank, and each rank draws its lambda and permutation from its own
  mixing generator, a function of ``(seed, epoch, rank)``; rank 0 draws what a single process draws.
- Checkpoints hold the plain model and method, one file per rank, loadable by a single process.

What differs from one process: BatchNorm normalises with each rank's own batch statistics
(convert the model with ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` for global ones),
dropout draws per rank, and the mixing draws of ranks other than 0 are their own. Every rank
evaluates the whole test set.

Run a script with ``torchrun``, one process per GPU::

    # train_ddp.py -- run with: torchrun --nproc_per_node=4 train_ddp.py
    import os
    import torch
    import torch.distributed as dist
    import mixuplib as m
    from mixuplib import data

    dist.init_process_group("nccl")          # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR, ...
    local_rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local_rank)
    split = data.cifar("cifar10").to(torch.device("cuda", local_rank))  # download once beforehand: ranks would race
    world = dist.get_world_size()
    # The GLOBAL batch, and the linear scaling of the learning rate.
    recipe = m.Recipe(model="preact_resnet18", batch_size=128 * world, augment=True, lr=0.1 * world)
    net, method, batches = recipe.start(split, m.InputMixup(1.0), seed=0)
    history = m.fit(net, method, batches, (split.x_test, split.y_test), recipe, seed=0)
    if dist.get_rank() == 0:
        print(history.last)
    dist.destroy_process_group()

On CPUs, ``dist.init_process_group("gloo")`` and no ``set_device`` does the same (the tests
run two CPU processes that way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import epochs_done

__all__ = ["rank_and_world", "ShardedBatches", "wrap", "mean_over_ranks", "rank_checkpoint"]


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of this process: ``(0, 1)`` outside an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _check_rank(rank, world_size) -> None:
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an int in [0, {world_size - 1}] for world_size={world_size}, got {rank!r}")


class ShardedBatches:
    """One rank's share of every global batch: its contiguous slice of it.

    Every rank calls the wrapped ``batches`` with the same generators, so all draw the same
    global batches (the same order and augmentation); rank ``r`` of ``w`` keeps rows
    ``[r * B / w, (r + 1) * B / w)`` of each global batch of ``B`` examples. Each rank gathers
    and augments the whole global batch before slicing it (an indexing pass, small beside the
    forward pass), which is what makes the union of the shards the 1-rank run's batch.

    Args:
        batches: called with the order and augmentation generators, yields global ``(x, y)`` batches, ``x`` ``(B, ...)``,
            ``y`` ``(B,)`` or ``(B, K)`` (e.g. :class:`~mixuplib.batches.TensorBatches`). Each
            ``B`` must be a multiple of ``world_size`` (use ``drop_last=True``).
        rank: this process's rank, in ``[0, world_size)``.
        world_size: the number of ranks.

    Calling it yields ``(x[r*s:(r+1)*s], y[r*s:(r+1)*s])`` with ``s = B / world_size``.
    """

    def __init__(self, batches: Callable[..., Iterable[tuple[torch.Tensor, torch.Tensor]]], rank: int, world_size: int):
        if not callable(batches):
            raise TypeError(f"batches must be callable with generators (e.g. a TensorBatches), got {type(batches).__name__}")
        _check_rank(rank, world_size)
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def __len__(self) -> int:
        return len(self.batches)

    def __call__(self, order: torch.Generator | None = None,
                 augment: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.batches(order, augment):
            size = x.shape[0]
            if size % self.world_size:
                raise ValueError(f"each global batch must split evenly over world_size={self.world_size} ranks, got a batch of "
                                 f"{size}: use a batch size divisible by {self.world_size} and drop_last=True")
            share = size // self.world_size
            rows = slice(self.rank * share, (self.rank + 1) * share)
            yield x[rows], y[rows]


def _comm_device(device: torch.device) -> torch.device:
    """Where a collective's tensor must live: the GPU for NCCL, the CPU otherwise (gloo)."""
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def wrap(step: nn.Module, device: torch.device, ddp_options: dict | None = None) -> nn.Module:
    """``step`` under DistributedDataParallel; DDP starts every rank from rank 0's state.

    ``ddp_options`` are keyword arguments for ``DistributedDataParallel`` (e.g.
    ``{"find_unused_parameters": True}`` for a method that leaves some parameters out of a
    step); ``device_ids`` defaults to the model's GPU.
    """
    from torch.nn.parallel import DistributedDataParallel

    if ddp_options is not None and not isinstance(ddp_options, dict):
        raise TypeError(f"ddp_options must be a dict of DistributedDataParallel keyword arguments or None, got {type(ddp_options).__name__}")
    options = {"device_ids": [device.index] if device.type == "cuda" else None, **(ddp_options or {})}
    return DistributedDataParallel(step, **options)


def mean_over_ranks(total: torch.Tensor, seen: int) -> float:
    """The mean of a per-example sum over all ranks' examples: ``sum(total) / sum(seen)``."""
    device = _comm_device(total.device)
    sums = torch.stack([total.to(device, torch.float64), torch.tensor(float(seen), dtype=torch.float64, device=device)])
    dist.all_reduce(sums)
    return float(sums[0] / sums[1].clamp_min(1))


def rank_checkpoint(checkpoint: str | Path | None, rank: int, device: torch.device) -> Path | None:
    """This rank's checkpoint file (``run.pt.rank0``, ...), after checking that all ranks' files
    hold the same number of epochs (or none exists)."""
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    own = path.with_name(f"{path.name}.rank{rank}")
    done = epochs_done(own)
    span = torch.tensor([done, -done], dtype=torch.int64, device=_comm_device(device))
    dist.all_reduce(span, op=dist.ReduceOp.MAX)
    if int(span[0]) != -int(span[1]):
        raise RuntimeError(f"the ranks' checkpoints {path.name}.rank* hold between {-int(span[1])} and {int(span[0])} epochs; "
                           f"delete them to start again (a run stopped while they were being written)")
    return own
