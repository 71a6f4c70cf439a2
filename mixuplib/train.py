"""The training loop every chapter uses, and the interface methods plug into.

A *method* (ERM, input mixup, manifold mixup, AdaMixup, ...) is a :class:`Method`: an
``nn.Module`` whose ``loss(model, x, y, generator)`` turns a batch into a training loss.
Its own parameters, if it has any (AdaMixup's generator), are trained alongside the
model's and saved in the same checkpoint. The loop knows nothing else about it.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import models
from .batches import TensorBatches, random_crop_flip
from .data import Split
from .metrics import classification_metrics
from .models import predict

__all__ = ["seed_everything", "in_colab", "Method", "ERM", "Schedule", "TrainConfig", "Recipe", "History", "fit", "prepare_run", "train_on", "evaluate", "epoch_generator"]


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


@dataclass(kw_only=True)
class Schedule:
    """Optimiser, schedule and execution settings that a per-run config and a recipe share
    (defaults: the mixup paper's CIFAR recipe, 200 epochs).

    Attributes:
        epochs: passes over the training data.
        lr, momentum, weight_decay, nesterov: SGD settings.
        milestones: epochs at which the learning rate is multiplied by ``gamma``.
        progress: show a tqdm bar per epoch; ``None`` shows them in Colab, or wherever the
            environment variable ``MIXUPLIB_PROGRESS`` is ``1``, and nowhere else.
        amp: bfloat16 autocast on CUDA (ignored on CPU).
        channels_last: NHWC memory layout for 4-D inputs (faster convolutions on GPUs).
        compile: ``torch.compile`` each stage of the model.
        eval_batch_size: batch size for the test-set evaluation.
    """

    epochs: int = 200
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    milestones: tuple[int, ...] = (100, 150)
    gamma: float = 0.1
    progress: bool | None = None
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    eval_batch_size: int = 1000

    def __post_init__(self):
        self.milestones = tuple(self.milestones)
        for name in ("epochs", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")


@dataclass(kw_only=True)
class TrainConfig(Schedule):
    """The settings of one call of :func:`fit`: a :class:`Schedule` plus

    Attributes:
        seed: fixes the data order, the mixing draws and every other draw of the run.
        checkpoint: a file to save after every epoch and to resume from if it exists.
    """

    seed: int = 0
    checkpoint: str | None = None


@dataclass(kw_only=True)
class Recipe(Schedule):
    """How a chapter trains, in one place: the model, the batches and a :class:`Schedule`.

    A chapter builds one recipe from its parameters cell (:meth:`from_parameters`) and calls
    :func:`train_on` once per run; a run that differs says how (``recipe.replace(epochs=3)``).

    Attributes:
        model: a :func:`~mixuplib.models.build` name, e.g. ``"small_cnn"``.
        model_options: keyword arguments for the model, e.g. ``{"width": 8}``.
        batch_size: examples per training batch; the last, smaller batch is dropped, since
            mixing wants full batches.
        augment: the CIFAR random crop (padding 4) and horizontal flip, per batch.
    """

    model: str
    model_options: dict = field(default_factory=dict)
    batch_size: int = 128
    augment: bool = False

    def __post_init__(self):
        super().__post_init__()
        self.model_options = dict(self.model_options or {})
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")

    @classmethod
    def from_parameters(cls, setup: dict, training: dict) -> "Recipe":
        """The recipe of a chapter's parameters: ``model`` and ``model_options`` from its
        ``setup`` (which also names the data), everything else from its ``training`` dict.
        Unknown names in ``training`` raise an error that lists the accepted ones."""
        accepted = sorted(f.name for f in fields(cls) if f.name not in ("model", "model_options"))
        unknown = sorted(set(training) - set(accepted))
        if unknown:
            raise ValueError(f"training has unknown settings {unknown}; accepted: {accepted}")
        return cls(model=setup["model"], model_options=setup.get("model_options") or {}, **training)

    def replace(self, **changes) -> "Recipe":
        """A copy with ``changes`` (field names of :class:`Recipe`)."""
        return replace(self, **changes)

    def config(self, seed: int, checkpoint: str | None = None) -> TrainConfig:
        """The :class:`TrainConfig` of one run of this recipe."""
        shared = {f.name: getattr(self, f.name) for f in fields(Schedule)}
        return TrainConfig(**shared, seed=seed, checkpoint=checkpoint)


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


def in_colab() -> bool:
    """Whether this runs in Google Colab (where progress bars show and data sets may be downloaded)."""
    return "google.colab" in sys.modules


def _show_progress(setting: bool | None) -> bool:
    if setting is not None:
        return setting
    return in_colab() or os.environ.get("MIXUPLIB_PROGRESS") == "1"


@dataclass
class _Run:
    """What :func:`fit` holds while it trains: the model, the method, their optimiser and
    schedule, and the history so far."""

    model: nn.Module
    method: Method
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    history: History
    device: torch.device

    def state(self, config: TrainConfig) -> dict:
        return {"model": self.model.state_dict(), "method": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "history": self.history.records, "config": asdict(config)}


def _prepare(model: nn.Module, method: Method, config: TrainConfig) -> _Run:
    """Move the method to the model's device, set the memory layout and compilation, and
    build the SGD optimiser (over the model's and the method's parameters) and its schedule."""
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
    return _Run(model, method, optimizer, schedule, History(), device)


def _resume(run: _Run, checkpoint: Path) -> None:
    """Load the state a previous call saved to ``checkpoint``."""
    state = torch.load(checkpoint, map_location=run.device, weights_only=True)
    run.model.load_state_dict(state["model"])
    run.method.load_state_dict(state["method"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.schedule.load_state_dict(state["schedule"])
    run.history = History(state["history"])


def _save(path: Path, state: dict) -> None:
    partial = path.with_name(path.name + ".part")
    torch.save(state, partial)
    partial.replace(path)


def _train_epoch(run: _Run, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], generator: torch.Generator,
                 config: TrainConfig, autocast, desc: str) -> tuple[float, int]:
    """One pass of SGD steps over ``batches``; returns the mean training loss and the examples seen."""
    from tqdm import tqdm

    run.model.train()
    run.method.train()
    total_loss, seen = torch.zeros((), device=run.device), 0  # summed on the device: no host sync per step
    for x, y in tqdm(batches, desc=desc, disable=not _show_progress(config.progress), leave=False):
        if config.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss = run.method.loss(run.model, x, y, generator)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        total_loss += loss.detach() * x.shape[0]
        seen += x.shape[0]
    return float(total_loss) / max(seen, 1), seen


def fit(model: nn.Module, method: Method, train: Callable[[torch.Generator], Iterable[tuple[torch.Tensor, torch.Tensor]]],
        test: tuple[torch.Tensor, torch.Tensor] | None, config: TrainConfig, *,
        callbacks: Iterable[Callable[[nn.Module, int], dict[str, float]]] = ()) -> History:
    """Train ``model`` with ``method`` and return its per-epoch history.

    Args:
        model: a stage-wise model on its device.
        method: the :class:`Method` (moved to the model's device here).
        train: called with the epoch's generator, yields ``(x, y)`` batches
            (e.g. :class:`~mixuplib.batches.TensorBatches`).
        test: ``(x_test, y_test)`` on the model's device, evaluated after every epoch; None
            skips that (the records then have no ``test_*`` numbers), for runs whose final
            model is all that gets scored. It does not change the training: the weights are
            the same either way.
        config: a :class:`TrainConfig`.
        callbacks: ``callback(model, epoch) -> dict`` run after each epoch; their numbers
            are added to the epoch's record (e.g. accuracy on the corrupted training labels).

    With ``config.checkpoint`` set, the state (model, method, optimiser, schedule, history)
    is saved after every epoch and a later call resumes from it, ending with the same
    weights as an uninterrupted run.
    """
    run = _prepare(model, method, config)
    checkpoint = Path(config.checkpoint) if config.checkpoint else None
    if checkpoint is not None and checkpoint.exists():
        _resume(run, checkpoint)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.amp and run.device.type == "cuda")

    for epoch in range(len(run.history.records), config.epochs):
        generator = epoch_generator(config.seed, epoch)
        torch.manual_seed(_epoch_seed(config.seed, epoch))  # dropout and other in-model draws
        lr = run.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        train_loss, seen = _train_epoch(run, train(generator), generator, config, autocast,
                                        desc=f"epoch {epoch + 1}/{config.epochs}")
        run.schedule.step()
        seconds = time.perf_counter() - start
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss}
        if test is not None:
            with autocast:
                record.update({f"test_{k}": v for k, v in evaluate(model, *test, config.eval_batch_size).items()})
        record.update(method.epoch_end(epoch + 1))
        for callback in callbacks:
            record.update(callback(model, epoch + 1))
        record.update(seconds=seconds, examples_per_s=seen / seconds)
        run.history.records.append(record)
        if checkpoint is not None:
            _save(checkpoint, run.state(config))
    return run.history


def prepare_run(split: Split, method: Method | Callable[[nn.Module], Method], *, seed: int,
                recipe: Recipe) -> tuple[nn.Sequential, Method, TensorBatches]:
    """Everything a run of ``recipe`` starts from: seed, build ``recipe.model`` for ``split``, make the method.

    ``method`` is a :class:`Method`, or a factory that receives the built model and returns one
    (so e.g. ICT's teacher or AdaMixup's discriminator takes its shape from the model); the
    factory is called after seeding, so whatever it initialises belongs to the run's seed.
    Returns ``(model, method, batches)``: the model on ``split``'s device and in its input
    dtype, and batches of ``recipe.batch_size`` from ``split``'s training set (with the CIFAR
    crop-and-flip when ``recipe.augment``).
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a mixuplib.Recipe, got {type(recipe).__name__}")
    device = split.x_train.device
    seed_everything(seed, deterministic=device.type == "cpu")
    net = models.build(recipe.model, tuple(split.x_train.shape[1:]), split.num_classes, **recipe.model_options)
    net = net.to(device=device, dtype=split.x_train.dtype)
    if not isinstance(method, Method):
        if not callable(method):
            raise TypeError(f"method must be a mixuplib.Method or a factory model -> Method, got {type(method).__name__}")
        method = method(net)
        if not isinstance(method, Method):
            raise TypeError(f"the method factory must return a mixuplib.Method, got {type(method).__name__}")
    batches = TensorBatches(split.x_train, split.y_train, recipe.batch_size, drop_last=True,
                            augment=random_crop_flip if recipe.augment else None)
    return net, method, batches


def train_on(split: Split, method: Method | Callable[[nn.Module], Method], *, seed: int, recipe: Recipe, callbacks=(),
             checkpoint: str | None = None, test_each_epoch: bool = True) -> tuple[nn.Sequential, History]:
    """One run of ``recipe``: seed, build ``recipe.model`` for ``split``, train it with ``method``
    (a :class:`Method` or a factory of one, see :func:`prepare_run`).

    The test set is evaluated after every epoch unless ``test_each_epoch`` is False (a run
    scored only at its end saves the time; its weights are the same). Returns ``(model, history)``.
    """
    net, method, batches = prepare_run(split, method, seed=seed, recipe=recipe)
    test = (split.x_test, split.y_test) if test_each_epoch else None
    history = fit(net, method, batches, test, recipe.config(seed, checkpoint), callbacks=callbacks)
    return net, history
