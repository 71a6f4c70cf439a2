"""How a run trains, in one place: the model, the batches, the optimiser and its schedule.

A chapter builds one :class:`Recipe` from its parameters cell (:meth:`Recipe.from_parameters`);
a run that differs says how (``recipe.replace(epochs=3)``). :meth:`Recipe.start` builds what
one run of it starts from; :func:`mixuplib.train.fit` trains it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import partial
from typing import Callable

from torch import nn

from . import models
from .batches import TensorBatches, random_crop_flip
from .data import Split
from .method import Method
from .seeding import seed_everything

__all__ = ["Recipe"]


@dataclass(kw_only=True)
class Recipe:
    """The settings of a run (defaults: the mixup paper's CIFAR recipe, 200 epochs).

    Attributes:
        model: a :func:`~mixuplib.models.build` name, e.g. ``"small_cnn"``; ``None`` where the
            caller builds the model and calls :func:`~mixuplib.train.fit` itself.
        model_options: keyword arguments for the model, e.g. ``{"width": 8}``.
        batch_size: examples per training batch; the last, smaller batch is dropped, since
            mixing wants full batches.
        augment: the CIFAR random crop and horizontal flip, per batch.
        crop_padding: the crop's zero padding in pixels on each side (4 in the CIFAR papers).
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

    model: str | None = None
    model_options: dict = field(default_factory=dict)
    batch_size: int = 128
    augment: bool = False
    crop_padding: int = 4
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
        self.model_options = dict(self.model_options or {})
        for name in ("epochs", "eval_batch_size", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise ValueError(f"crop_padding must be an integer >= 0, got {self.crop_padding!r}")

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

    def start(self, split: Split, method: Method | Callable[[nn.Module], Method], *,
              seed: int) -> tuple[nn.Sequential, Method, TensorBatches]:
        """Everything a run of this recipe starts from: seed, build ``model`` for ``split``, make the method.

        ``method`` is a :class:`~mixuplib.method.Method`, or a factory that receives the built
        model and returns one (so e.g. ICT's teacher or AdaMixup's discriminator takes its shape
        from the model); the factory is called after seeding, so whatever it initialises belongs
        to the run's seed. Returns ``(model, method, batches)``: the model on ``split``'s device
        and in its input dtype, and batches of ``batch_size`` from ``split``'s training set (with
        the CIFAR crop-and-flip when ``augment``).
        """
        if self.model is None:
            raise ValueError("recipe.model is None: name a mixuplib.models.build model to start a run from the recipe")
        device = split.x_train.device
        seed_everything(seed, deterministic=device.type == "cpu")
        net = models.build(self.model, tuple(split.x_train.shape[1:]), split.num_classes, **self.model_options)
        net = net.to(device=device, dtype=split.x_train.dtype)
        if not isinstance(method, Method):
            if not callable(method):
                raise TypeError(f"method must be a mixuplib.Method or a factory model -> Method, got {type(method).__name__}")
            method = method(net)
            if not isinstance(method, Method):
                raise TypeError(f"the method factory must return a mixuplib.Method, got {type(method).__name__}")
        augment = partial(random_crop_flip, padding=self.crop_padding) if self.augment else None
        batches = TensorBatches(split.x_train, split.y_train, self.batch_size, drop_last=True, augment=augment)
        return net, method, batches
