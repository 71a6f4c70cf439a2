"""The training loop every chapter uses: :func:`fit`.

``fit`` trains a model with a :class:`~mixuplib.method.Method` under a
:class:`~mixuplib.recipe.Recipe`, in one process or, inside an initialised process group (a
script started by ``torchrun``), on every rank under DistributedDataParallel: each rank trains
on its slice of every global batch and mixes within it (:mod:`mixuplib.distributed`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from . import checkpoint as checkpoints
from . import distributed
from .history import History
from .metrics import classification_metrics
from .method import Method
from .models import predict
from .progress import progress_bar
from .recipe import Recipe
from .seeding import derived_seed, epoch_generators

__all__ = ["fit", "evaluate", "Batches", "Callback"]

# Called with the epoch's order and augmentation generators, yields (x, y) batches (a TensorBatches).
Batches = Callable[[torch.Generator, torch.Generator], Iterable[tuple[torch.Tensor, torch.Tensor]]]
# Called after each epoch with the model and the epoch number; returns numbers for the epoch's record.
Callback = Callable[[nn.Module, int], dict[str, float]]


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
    """Test error (%), NLL and ECE (%) of ``model`` on ``(x, y)``; see :func:`~mixuplib.metrics.classification_metrics`."""
    return classification_metrics(predict(model, x, batch_size), y)


class _Step(nn.Module):
    """The loss of one batch as one module, so that DistributedDataParallel sees every use of
    the model (stage-wise ones like ``model[:k]`` included) and the method's own parameters."""

    def __init__(self, model: nn.Module, method: Method):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.method.loss(self.model, x, y, generator)


def fit(model: nn.Module, method: Method, train: Batches, test: tuple[torch.Tensor, torch.Tensor] | None, recipe: Recipe, *,
        seed: int, checkpoint: str | Path | None = None, callbacks: Iterable[Callback] = (), ddp_options: dict | None = None) -> History:
    """Train ``model`` with ``method`` under ``recipe``'s optimiser and schedule; returns the per-epoch history.

    ``model`` is a stage-wise model on its device (this rank's, under ``torchrun``); ``method``
    is moved there. ``train`` yields the (global) batches, e.g. a
    :class:`~mixuplib.batches.TensorBatches`. ``test`` (on the model's device) is scored after
    every epoch; ``None`` skips that, and the weights are the same. ``seed`` fixes the data
    order, the augmentation, the mixing and the in-model draws (dropout). ``checkpoint`` is saved
    after every epoch and resumed from if it exists (one file per rank, ``<checkpoint>.rank<r>``,
    under ``torchrun``). ``callbacks`` add their numbers to each epoch's record;
    ``ddp_options`` go to ``DistributedDataParallel`` in a process group.
    """
    rank, world = distributed.rank_and_world()
    device = next(model.parameters()).device
    method.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    if recipe.compile:
        for stage in model.children():
            stage.compile()
    optimizer = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(recipe.milestones), gamma=recipe.gamma)
    state = {"model": model, "method": method, "optimizer": optimizer, "schedule": schedule}
    if world > 1:
        checkpoint, train = distributed.rank_checkpoint(checkpoint, rank, device), distributed.ShardedBatches(train, rank, world)
    resumed = checkpoint is not None and Path(checkpoint).exists()
    history = History(checkpoints.load(checkpoint, **state) if resumed else [])
    step = _Step(model, method) if world == 1 else distributed.wrap(_Step(model, method), device, ddp_options)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=recipe.amp and device.type == "cuda")

    for epoch in range(len(history.records), recipe.epochs):
        generators = epoch_generators(seed, epoch, rank)
        torch.manual_seed(derived_seed(seed, epoch, "model", rank))  # dropout and other in-model draws
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"]}
        start, seen = time.perf_counter(), 0
        total = torch.zeros((), device=device)  # summed on the device: no host sync per step
        step.train()
        for x, y in progress_bar(train(generators.order, generators.augment), recipe.progress, f"epoch {epoch + 1}/{recipe.epochs}"):
            if recipe.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                loss = step(x, y, generators.mixing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * x.shape[0]
            seen += x.shape[0]
        schedule.step()
        seconds = time.perf_counter() - start
        record["train_loss"] = distributed.mean_over_ranks(total, seen) if world > 1 else float(total) / max(seen, 1)

        if test is not None:
            with autocast:
                record.update({f"test_{k}": v for k, v in evaluate(model, *test, recipe.eval_batch_size).items()})
        record.update(method.epoch_end(epoch + 1))
        for callback in callbacks:
            record.update(callback(model, epoch + 1))
        record.update(seconds=seconds, examples_per_s=seen / seconds)
        history.records.append(record)
        if checkpoint is not None:
            checkpoints.save(checkpoint, **state, records=history.records)
    return history
