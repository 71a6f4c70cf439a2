"""Training on several GPUs with DistributedDataParallel, for a job that outgrows one GPU.

Each process (a *rank*) holds a copy of the model and trains on its own slice of every
global batch; DistributedDataParallel (DDP) averages the gradients over the ranks after each
backward pass, so every rank takes the same optimiser step and the copies stay identical.
Each rank mixes within its own slice, as the mixup paper's multi-GPU ImageNet runs did:
partners never cross a rank, and each rank draws its own lambda and permutation from a
generator seeded by ``(seed, epoch, rank)`` (:func:`rank_generator`).

What stays as in :func:`~mixuplib.train.fit`:

- The data order and the augmentation come from the shared epoch generator
  (:func:`~mixuplib.train.epoch_generator`): every rank draws the same global batch and keeps
  its contiguous slice (:class:`ShardedBatches`), so 2 ranks with 64 examples each see the
  very 128 examples a 1-rank run with batch 128 sees. Under ERM, whose loss draws nothing,
  the two runs end with the same weights up to float round-off.
- Checkpoints hold the plain model and method, loadable by a single-process run.

What differs: BatchNorm normalises with each rank's own batch statistics (convert the model
with ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` for global ones), dropout draws per
rank, and the mixing draws differ from a single-process run's (they no longer share one
generator with the data order). Every rank evaluates the whole test set.

Run a script with ``torchrun``, one process per GPU::

    # train_ddp.py -- run with: torchrun --nproc_per_node=4 train_ddp.py
    import os
    import torch
    import torch.distributed as dist
    import mixuplib as m
    from mixuplib import data, models
    from mixuplib.batches import TensorBatches, random_crop_flip
    from mixuplib.distributed import fit_distributed

    dist.init_process_group("nccl")          # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR, ...
    local_rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local_rank)
    device = torch.device("cuda", local_rank)
    m.seed_everything(0)
    split = data.cifar("cifar10").to(device)   # download once beforehand: ranks would race
    net = models.build("preact_resnet18", (3, 32, 32), 10).to(device)
    world = dist.get_world_size()
    batches = TensorBatches(split.x_train, split.y_train, 128 * world, drop_last=True,
                            augment=random_crop_flip)   # the GLOBAL batch
    config = m.TrainConfig(epochs=200, lr=0.1 * world)           # linear scaling of the lr
    history = fit_distributed(net, m.InputMixup(1.0), batches, (split.x_test, split.y_test), config)
    if dist.get_rank() == 0:
        print(history.last)
    dist.destroy_process_group()

On CPUs, ``dist.init_process_group("gloo")`` and no ``set_device`` does the same (the tests
run two CPU processes that way).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from .train import History, Method, TrainConfig, _epoch_seed, fit

__all__ = ["ShardedBatches", "rank_generator", "fit_distributed"]


def _rank_seed(epoch_seed: int, rank: int, purpose: str = "method") -> int:
    """A 63-bit seed from an epoch's seed, a rank and what it is for; stable across processes
    and Python versions (unlike ``hash``)."""
    digest = hashlib.blake2b(f"mixuplib/{purpose}/{epoch_seed % 2**64}/{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _check_rank(rank, world_size) -> None:
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an int in [0, {world_size - 1}] for world_size={world_size}, got {rank!r}")


def rank_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """The CPU generator a rank's method draws from (lambda, permutation, ...) in epoch ``epoch``
    of a run seeded ``seed``: a function of ``(seed, epoch, rank)`` only, so the draws are
    reproducible, differ between ranks, and a resumed run draws what an uninterrupted one would.
    It is independent of the shared epoch generator that orders the data."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise ValueError(f"rank must be an int >= 0, got {rank!r}")
    return torch.Generator().manual_seed(_rank_seed(_epoch_seed(seed, epoch), rank))


class ShardedBatches:
    """One rank's share of every global batch: its contiguous slice of it.

    Every rank calls the wrapped ``batches`` with the same generator, so all draw the same
    global batches (the same order and augmentation); rank ``r`` of ``w`` keeps rows
    ``[r * B / w, (r + 1) * B / w)`` of each global batch of ``B`` examples. Each rank gathers
    and augments the whole global batch before slicing it (an indexing pass, small beside the
    forward pass), which is what makes the union of the shards the 1-rank run's batch.

    Args:
        batches: called with a generator, yields global ``(x, y)`` batches, ``x`` ``(B, ...)``,
            ``y`` ``(B,)`` or ``(B, K)`` (e.g. :class:`~mixuplib.batches.TensorBatches`). Each
            ``B`` must be a multiple of ``world_size`` (use ``drop_last=True``).
        rank: this process's rank, in ``[0, world_size)``.
        world_size: the number of ranks.

    Calling it yields ``(x[r*s:(r+1)*s], y[r*s:(r+1)*s])`` with ``s = B / world_size``.
    """

    def __init__(self, batches: Callable[[torch.Generator], Iterable[tuple[torch.Tensor, torch.Tensor]]], rank: int, world_size: int):
        if not callable(batches):
            raise TypeError(f"batches must be callable with a generator (e.g. a TensorBatches), got {type(batches).__name__}")
        _check_rank(rank, world_size)
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def __len__(self) -> int:
        return len(self.batches)

    def __call__(self, generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.batches(generator):
            size = x.shape[0]
            if size % self.world_size:
                raise ValueError(f"each global batch must split evenly over world_size={self.world_size} ranks, got a batch of "
                                 f"{size}: use a batch size divisible by {self.world_size} and drop_last=True")
            share = size // self.world_size
            rows = slice(self.rank * share, (self.rank + 1) * share)
            yield x[rows], y[rows]


class _Step(nn.Module):
    """The whole loss computation as one module, so that DDP sees every use of the model
    (stage-wise ones like ``model[:k]`` included) and the method's own parameters."""

    def __init__(self, model: nn.Module, method: Method):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.method.loss(self.model, x, y, generator)


def _comm_device(device: torch.device) -> torch.device:
    """Where a collective's tensor must live: the GPU for NCCL, the CPU otherwise (gloo)."""
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


class _RankMethod(Method):
    """Runs the wrapped method under DDP with this rank's generator.

    ``fit`` passes the shared epoch generator; the loss is computed with
    :func:`rank_generator`'s generator instead (and dropout reseeded per rank). Its
    parameters and state dict are the wrapped method's, so checkpoints match a
    single-process run's. The epoch's ``train_loss`` is averaged over all ranks.
    """

    def __init__(self, model: nn.Module, method: Method, rank: int, ddp_options: dict):
        super().__init__()
        self.method, self.rank, self.ddp_options = method, rank, ddp_options
        # Not submodules: fit must optimise the model's parameters once, not twice.
        self.__dict__["_model"] = model
        self.__dict__["_ddp"] = None
        self._shared = self._own = None
        self._total, self._seen = None, 0

    def state_dict(self, *args, **kwargs):
        return self.method.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.method.load_state_dict(state_dict, strict=strict, assign=assign)

    def _wrapped(self, device: torch.device) -> nn.Module:
        # Built at the first step, after fit has moved, converted, compiled and resumed the
        # model: DDP then broadcasts rank 0's state, the one every rank trains from.
        if self._ddp is None:
            from torch.nn.parallel import DistributedDataParallel

            options = {"device_ids": [device.index] if device.type == "cuda" else None, **self.ddp_options}
            self.__dict__["_ddp"] = DistributedDataParallel(_Step(self._model, self.method), **options)
        return self._ddp

    def loss(self, model, x, y, generator):
        if model is not self._model:
            raise ValueError("model must be the model fit_distributed was given")
        if generator is not self._shared:  # a new epoch: fit made a new epoch generator
            epoch_seed = generator.initial_seed()
            self._shared = generator  # held, so its id cannot be reused by the next epoch's
            self._own = torch.Generator().manual_seed(_rank_seed(epoch_seed, self.rank))
            torch.manual_seed(_rank_seed(epoch_seed, self.rank, "model"))  # dropout, per rank (fit seeds it per epoch)
        ddp = self._wrapped(x.device)
        ddp.train(self.training)
        loss = ddp(x, y, self._own)
        part = loss.detach().double() * x.shape[0]
        self._total = part if self._total is None else self._total + part
        self._seen += x.shape[0]
        return loss

    def epoch_end(self, epoch):
        record = dict(self.method.epoch_end(epoch))
        if self._total is not None:
            device = _comm_device(self._total.device)
            sums = torch.stack([self._total.to(device), torch.tensor(float(self._seen), dtype=torch.float64, device=device)])
            dist.all_reduce(sums)
            record["train_loss"] = float(sums[0] / sums[1].clamp_min(1))
        self._total, self._seen = None, 0
        return record


def _rank_checkpoint(config: TrainConfig, rank: int, device: torch.device) -> TrainConfig:
    """``config`` with a checkpoint file per rank (``run.pt.rank0``, ...), after checking that
    all ranks' files hold the same number of epochs (or none exists)."""
    if config.checkpoint is None:
        return config
    path = Path(config.checkpoint)
    own = path.with_name(f"{path.name}.rank{rank}")
    done = len(torch.load(own, map_location="cpu", weights_only=True)["history"]) if own.exists() else 0
    span = torch.tensor([done, -done], dtype=torch.int64, device=_comm_device(device))
    dist.all_reduce(span, op=dist.ReduceOp.MAX)
    if int(span[0]) != -int(span[1]):
        raise RuntimeError(f"the ranks' checkpoints {path.name}.rank* hold between {-int(span[1])} and {int(span[0])} epochs; "
                           f"delete them to start again (a run stopped while they were being written)")
    return replace(config, checkpoint=str(own))


def fit_distributed(
    model: nn.Module,
    method: Method,
    train: Callable[[torch.Generator], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    test: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    *,
    callbacks: Iterable[Callable[[nn.Module, int], dict[str, float]]] = (),
    ddp_options: dict | None = None,
) -> History:
    """:func:`~mixuplib.train.fit` on every rank of an initialised process group, under DDP.

    Call it in each process (``torchrun`` starts them) after
    ``torch.distributed.init_process_group``. Each rank trains on its slice of every global
    batch that ``train`` yields (see :class:`ShardedBatches`) and draws its mixing from
    :func:`rank_generator`; DDP starts every rank from rank 0's weights and averages the
    gradients, so all ranks end with the same weights. See the module docstring for a script.

    Args:
        model: the plain (unwrapped) model, on this rank's device.
        method: the :class:`~mixuplib.train.Method`; its own parameters (AdaMixup's) are
            averaged like the model's, and it may run the model stage by stage.
        train: called with the epoch's generator, yields *global* ``(x, y)`` batches,
            ``x`` ``(B, ...)`` with ``B`` a multiple of the world size (e.g. a
            :class:`~mixuplib.batches.TensorBatches` with ``drop_last=True``).
        test: ``(x_test, y_test)`` on the model's device; every rank evaluates all of it.
        config: a :class:`~mixuplib.train.TrainConfig`; ``lr`` applies to the global batch.
            With ``checkpoint`` set, each rank saves and resumes its own file
            ``<checkpoint>.rank<r>``, holding the plain model and method.
        callbacks: as in :func:`~mixuplib.train.fit`, run on every rank.
        ddp_options: keyword arguments for ``DistributedDataParallel`` (e.g.
            ``{"find_unused_parameters": True}`` for a method that leaves some parameters out
            of a step); ``device_ids`` defaults to the model's GPU.

    Returns:
        This rank's :class:`~mixuplib.train.History`; ``train_loss`` is the mean over all
        ranks' examples, ``seconds`` and ``examples_per_s`` are this rank's.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("fit_distributed needs an initialised process group: call torch.distributed.init_process_group "
                           "first (torchrun sets the environment it reads); for one process, use mixuplib.fit")
    if isinstance(train, ShardedBatches):
        raise TypeError("train must yield global batches; fit_distributed shards them itself, got a ShardedBatches")
    if ddp_options is not None and not isinstance(ddp_options, dict):
        raise TypeError(f"ddp_options must be a dict of DistributedDataParallel keyword arguments or None, got {type(ddp_options).__name__}")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    device = next(model.parameters()).device
    config = _rank_checkpoint(config, rank, device)
    wrapper = _RankMethod(model, method, rank, dict(ddp_options or {}))
    return fit(model, wrapper, ShardedBatches(train, rank, world_size), test, config, callbacks=callbacks)
