"""The training loop every chapter uses, and the interface methods plug into.

A *method* (ERM, input mixup, manifold mixup, AdaMixup, ...) is a :class:`Method`: an
``nn.Module`` whose ``loss(model, x, y, generator)`` turns a batch into a training loss.
Its own parameters, if it has any (AdaMixup's generator), are trained alongside the
model's and saved in the same checkpoint. The loop knows nothing else about it.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import models
from .data import Split, TensorBatches, random_crop_flip
from .metrics import classification_metrics
from .models import predict

__all__ = ["seed_everything", "Method", "ERM", "TrainConfig", "History", "fit", "train_on", "evaluate", "epoch_generator"]


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


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator for one epoch: it depends on (seed, epoch) only, so a run resumed at
    an epoch boundary draws exactly what an uninterrupted run would."""
    return torch.Generator().manual_seed(_epoch_seed(seed, epoch))


class Method(nn.Module):
    """How one training step turns a batch into a loss. Subclasses implement :meth:`loss`."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training loss of ``model`` on the batch ``x`` ``(B, ...)``, ``y`` ``(B,)``; a 0-d tensor."""
        raise NotImplementedError

    def epoch_end(self, epoch: int) -> dict[str, float]:
        """Numbers to record in the history after each epoch (e.g. a learned lambda range)."""
        return {}


class ERM(Method):
    """Empirical risk minimisation: plain cross-entropy on the batch as it is."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def loss(self, model, x, y, generator):
        return F.cross_entropy(model(x), y, label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"


@dataclass
class TrainConfig:
    """Optimiser, schedule and run settings (defaults: the mixup paper's CIFAR recipe, 200 epochs).

    Attributes:
        epochs: passes over the training data.
        lr, momentum, weight_decay, nesterov: SGD settings.
        milestones: epochs at which the learning rate is multiplied by ``gamma``.
        seed: fixes the data order, the mixing draws and every other draw of the run.
        progress: show a tqdm bar per epoch.
        amp: bfloat16 autocast on CUDA (ignored on CPU).
        channels_last: NHWC memory layout for 4-D inputs (faster convolutions on GPUs).
        compile: ``torch.compile`` each stage of the model.
        eval_batch_size: batch size for the test-set evaluation.
        checkpoint: a file to save after every epoch and to resume from if it exists.
    """

    epochs: int = 200
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    milestones: tuple[int, ...] = (100, 150)
    gamma: float = 0.1
    seed: int = 0
    progress: bool = False
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    eval_batch_size: int = 1000
    checkpoint: str | None = None


@dataclass
class History:
    """One record per epoch: ``epoch``, ``lr``, ``train_loss``, ``test_error`` (%),
    ``test_nll``, ``test_ece`` (%), ``seconds``, ``examples_per_s`` and whatever the method
    and callbacks add."""

    records: list[dict[str, float]] = field(default_factory=list)

    def column(self, name: str) -> list[float]:
        return [r[name] for r in self.records]

    @property
    def last(self) -> dict[str, float]:
        return self.records[-1]

    def best(self, name: str = "test_error") -> float:
        return min(self.column(name))


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
    """Test error (%), NLL and ECE (%) of ``model`` on ``(x, y)``; see :func:`~mixuplib.metrics.classification_metrics`."""
    return classification_metrics(predict(model, x, batch_size), y)


def _save(path: Path, state: dict) -> None:
    partial = path.with_name(path.name + ".part")
    torch.save(state, partial)
    partial.replace(path)


def fit(
    model: nn.Module,
    method: Method,
    train: Callable[[torch.Generator], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    test: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    *,
    callbacks: Iterable[Callable[[nn.Module, int], dict[str, float]]] = (),
) -> History:
    """Train ``model`` with ``method`` and return its per-epoch history.

    Args:
        model: a stage-wise model on its device.
        method: the :class:`Method` (moved to the model's device here).
        train: called with the epoch's generator, yields ``(x, y)`` batches
            (e.g. :class:`~mixuplib.data.TensorBatches`).
        test: ``(x_test, y_test)`` on the model's device, evaluated after every epoch.
        config: a :class:`TrainConfig`.
        callbacks: ``callback(model, epoch) -> dict`` run after each epoch; their numbers
            are added to the epoch's record (e.g. accuracy on the corrupted training labels).

    With ``config.checkpoint`` set, the state (model, method, optimiser, schedule, history)
    is saved after every epoch and a later call resumes from it, ending with the same
    weights as an uninterrupted run.
    """
    from tqdm import tqdm

    device = next(model.parameters()).device
    method.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    if config.compile:
        for stage in model.children():
            stage.compile()
    params = list(model.parameters()) + list(method.parameters())
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=config.nesterov)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.gamma)
    history = History()
    checkpoint = Path(config.checkpoint) if config.checkpoint else None
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        history = History(state["history"])
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda")

    for epoch in range(len(history.records), config.epochs):
        generator = epoch_generator(config.seed, epoch)
        torch.manual_seed(_epoch_seed(config.seed, epoch))  # dropout and other in-model draws
        model.train()
        method.train()
        lr = optimizer.param_groups[0]["lr"]
        total_loss, seen, start = torch.zeros((), device=device), 0, time.perf_counter()
        for x, y in tqdm(train(generator), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress, leave=False):
            if config.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                loss = method.loss(model, x, y, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * x.shape[0]
            seen += x.shape[0]
        schedule.step()
        seconds = time.perf_counter() - start
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": float(total_loss) / max(seen, 1)}
        with autocast:
            record.update({f"test_{k}": v for k, v in evaluate(model, *test, config.eval_batch_size).items()})
        record.update(method.epoch_end(epoch + 1))
        for callback in callbacks:
            record.update(callback(model, epoch + 1))
        record.update(seconds=seconds, examples_per_s=seen / seconds)
        history.records.append(record)
        if checkpoint is not None:
            _save(checkpoint, {"model": model.state_dict(), "method": method.state_dict(), "optimizer": optimizer.state_dict(),
                               "schedule": schedule.state_dict(), "history": history.records, "config": asdict(config)})
    return history


def train_on(split: Split, method: Method, model: str, *, seed: int, epochs: int, batch_size: int = 128,
             augment: bool = False, model_options: dict | None = None, callbacks=(), **config) -> tuple[nn.Sequential, History]:
    """Seed, build the model ``model`` (a :func:`~mixuplib.models.build` name) for ``split``, train it.

    The chapters' one-line experiment: the model is created on ``split``'s device and in its
    input dtype, full batches of ``batch_size`` are drawn (mixing wants full batches), with the
    CIFAR crop-and-flip when ``augment``; ``config`` holds further :class:`TrainConfig` fields.
    Returns ``(model, history)``.
    """
    device = split.x_train.device
    seed_everything(seed, deterministic=device.type == "cpu")
    net = models.build(model, tuple(split.x_train.shape[1:]), split.num_classes, **(model_options or {}))
    net = net.to(device=device, dtype=split.x_train.dtype)
    batches = TensorBatches(split.x_train, split.y_train, batch_size, drop_last=True, augment=random_crop_flip if augment else None)
    history = fit(net, method, batches, (split.x_test, split.y_test), TrainConfig(epochs=epochs, seed=seed, **config), callbacks=callbacks)
    return net, history
