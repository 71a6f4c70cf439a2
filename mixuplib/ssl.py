"""Semi-supervised learning with mixup: ICT and MixMatch as training methods.

Both take the labelled batch from the training loop and draw an unlabelled batch of their own
from ``unlabeled`` with the loop's generator, so a run is as reproducible as any other. The
weight of the unlabelled loss ramps up over ``rampup_steps`` steps (a sigmoid-shaped ramp, as
in the papers), since early predictions on unlabelled data are mostly noise.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .losses import mixup_cross_entropy
from .mixing import MixedBatch, check_alpha, mixup, sample_lambda
from .method import Method

__all__ = ["sharpen", "rampup", "interleave", "ICT", "MixMatch"]


def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """Lower the entropy of distributions ``p`` ``(B, K)``: ``p ** (1 / T)``, renormalised.

    ``temperature`` in (0, 1]; 1 leaves ``p`` as it is, towards 0 it approaches one-hot.
    """
    if not 0 < temperature <= 1:
        raise ValueError(f"temperature must lie in (0, 1], got {temperature!r}")
    if p.dim() != 2:
        raise ValueError(f"p must have shape (B, K), got {tuple(p.shape)}")
    powered = p.clamp_min(1e-12) ** (1.0 / temperature)
    return powered / powered.sum(dim=1, keepdim=True)


def rampup(step: int, length: int) -> float:
    """``exp(-5 (1 - t)^2)`` for ``t = step / length`` clipped to [0, 1] (Laine & Aila, 2017)."""
    if length <= 0:
        return 1.0
    t = min(max(step / length, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def interleave(pieces: list[torch.Tensor]) -> list[torch.Tensor]:
    """Trade rows between ``m`` equal pieces ``(n, ...)`` so that each holds a share of every one.

    Each piece is cut into ``m`` groups of consecutive rows (sizes differ by at most one); group
    ``i`` of piece ``i`` trades places with group ``i`` of piece 0. Piece 0 then holds group ``i``
    of every piece ``i``, and piece ``i`` holds one group of piece 0 among its own rows. Applying
    it twice gives back the pieces, so the same call undoes it on the network's outputs.
    MixMatch uses it to give each forward pass a batch-norm batch of labelled and unlabelled mixes.
    """
    if not pieces or any(p.shape[0] != pieces[0].shape[0] for p in pieces):
        raise ValueError(f"pieces must be a non-empty list of equal-length tensors, got lengths "
                         f"{[p.shape[0] for p in pieces]}")
    groups = [list(p.tensor_split(len(pieces))) for p in pieces]
    for i in range(1, len(pieces)):
        groups[0][i], groups[i][i] = groups[i][i], groups[0][i]
    return [torch.cat(g) for g in groups]


class _Unlabelled(Method):
    def __init__(self, unlabeled: torch.Tensor, batch_size: int, weight: float, rampup_steps: int,
                 hidden_labels: torch.Tensor | None = None):
        super().__init__()
        if unlabeled.dim() < 2 or unlabeled.shape[0] < batch_size:
            raise ValueError(f"unlabeled must hold at least batch_size={batch_size} examples (N, ...), got shape {tuple(unlabeled.shape)}")
        if hidden_labels is not None and hidden_labels.shape != unlabeled.shape[:1]:
            raise ValueError(f"hidden_labels must have shape ({unlabeled.shape[0]},), one per unlabelled example, "
                             f"got {tuple(hidden_labels.shape)}")
        self.unlabeled, self.batch_size, self.weight, self.rampup_steps = unlabeled, batch_size, weight, rampup_steps
        self.hidden_labels = hidden_labels
        # A host-side count: a counter on the GPU would cost a device-to-host sync every step
        # (the ramp needs it as a number). It is saved with the method as extra state.
        self.step = 0
        self._target_hits = None  # (right, seen), summed on the device over the epoch

    def get_extra_state(self) -> dict:
        return {"step": self.step}

    def set_extra_state(self, state: dict) -> None:
        self.step = int(state["step"])

    def _draw(self, generator) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(self.unlabeled.shape[0], (self.batch_size,), generator=generator)
        index = index.to(self.unlabeled.device, non_blocking=True)
        return self.unlabeled[index], index

    def _score_targets(self, targets: torch.Tensor, index: torch.Tensor) -> None:
        """With ``hidden_labels``, count how often the targets' top class is the true one (for
        monitoring only: the loss never sees the labels)."""
        if self.hidden_labels is None:
            return
        right = (targets.argmax(1) == self.hidden_labels[index]).sum().float()
        hits = torch.stack([right, torch.full_like(right, len(index))])  # a fill on the device, no copy from the host
        self._target_hits = hits if self._target_hits is None else self._target_hits + hits

    def epoch_end(self, epoch):
        """``target_accuracy``: the share (%) of the epoch's unlabelled draws whose target (the
        teacher's prediction for ICT, the guessed label for MixMatch) has the true class on top;
        only when ``hidden_labels`` were given."""
        if self._target_hits is None:
            return {}
        right, seen = self._target_hits.tolist()
        self._target_hits = None
        return {"target_accuracy": 100.0 * right / seen}

    def _weight(self) -> float:
        w = self.weight * rampup(self.step, self.rampup_steps)
        self.step += 1
        return w


class ICT(_Unlabelled):
    """Interpolation Consistency Training (Verma et al., 2019).

    The student's prediction on a mix of two unlabelled examples should equal the mix of a
    mean teacher's predictions on them; labelled examples get the usual cross-entropy.

    Args:
        unlabeled: inputs ``(N, ...)`` without labels, on the model's device.
        teacher: a network of the student's architecture; its weights are set to the student's
            at the first step, then follow their exponential moving average.
        alpha: Beta parameter for the unlabelled mixes (1.0 in the paper for CIFAR-10).
        weight: the consistency weight at the end of the ramp.
        ema: decay of the teacher's moving average.
        batch_size: unlabelled examples per step.
        rampup_steps: steps over which the consistency weight ramps up.
        hidden_labels: the true classes ``(N,)`` of ``unlabeled``, to report how often the
            teacher is right (``target_accuracy`` per epoch); never used in the loss.
    """

    def __init__(self, unlabeled: torch.Tensor, teacher: nn.Module, *, alpha: float = 1.0, weight: float = 10.0,
                 ema: float = 0.999, batch_size: int = 128, rampup_steps: int = 1000,
                 hidden_labels: torch.Tensor | None = None):
        super().__init__(unlabeled, batch_size, weight, rampup_steps, hidden_labels)
        self.alpha, self.ema = check_alpha(alpha), ema
        self.teacher = teacher.requires_grad_(False)

    @torch.no_grad()
    def _update_teacher(self, model: nn.Module) -> None:
        if self.step == 0:
            self.teacher.load_state_dict(model.state_dict())
            return
        for t, s in zip(self.teacher.state_dict().values(), model.state_dict().values()):
            if t.is_floating_point():
                t.lerp_(s, 1.0 - self.ema)
            else:
                t.copy_(s)

    def loss(self, model, x, y, generator):
        self._update_teacher(model)  # the student's last optimiser step is folded in here
        u, index = self._draw(generator)
        with torch.no_grad():
            self.teacher.train(model.training)
            targets = F.softmax(self.teacher(u), dim=1)
            self._score_targets(targets, index)
        mixed = mixup(u, targets, self.alpha, generator=generator)
        mixed_targets = torch.lerp(mixed.y_b, mixed.y_a, mixed.lam)
        consistency = F.mse_loss(F.softmax(model(mixed.x), dim=1), mixed_targets, reduction="sum") / u.shape[0]
        return F.cross_entropy(model(x), y) + self._weight() * consistency


class MixMatch(_Unlabelled):
    """MixMatch (Berthelot et al., 2019).

    Guess a label for each unlabelled example (the mean prediction over ``k`` augmentations,
    sharpened with ``temperature``), then mix the labelled batch and the augmented unlabelled
    batches among themselves with ``lambda' = max(lambda, 1 - lambda)``, so that each mix stays
    closer to its own example. Labelled mixes are scored with cross-entropy, unlabelled mixes
    with the squared error between prediction and guessed label.

    Args:
        unlabeled: inputs ``(N, ...)`` without labels, on the model's device.
        augment: ``augment(x, generator) -> x``, the stochastic augmentation.
        num_classes: K.
        k: augmentations per unlabelled example (2 in the paper).
        temperature: sharpening temperature (0.5).
        alpha: Beta parameter (0.75).
        weight: the unlabelled loss weight at the end of the ramp (75 for CIFAR-10).
        batch_size: unlabelled examples per step.
        rampup_steps: steps over which the unlabelled weight ramps up.
        hidden_labels: the true classes ``(N,)`` of ``unlabeled``, to report how often the guessed
            label is right (``target_accuracy`` per epoch); never used in the loss.
        interleaved: run the mixes through the network in ``k + 1`` passes of one batch each,
            after :func:`interleave`, as the paper's code does, so that every pass's batch-norm
            statistics mix labelled and unlabelled examples (and every pass updates the running
            statistics). Without it, one pass over all mixes; batch norm then sees their union.
            Needs ``batch_size`` equal to the labelled batch's size.
    """

    def __init__(self, unlabeled: torch.Tensor, augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
                 num_classes: int, *, k: int = 2, temperature: float = 0.5, alpha: float = 0.75, weight: float = 75.0,
                 batch_size: int = 128, rampup_steps: int = 1000, hidden_labels: torch.Tensor | None = None,
                 interleaved: bool = False):
        super().__init__(unlabeled, batch_size, weight, rampup_steps, hidden_labels)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        sharpen(torch.ones(1, 2) / 2, temperature)  # validates temperature now
        self.augment, self.num_classes, self.k = augment, num_classes, k
        self.temperature, self.alpha = temperature, check_alpha(alpha)
        self.interleaved = interleaved

    def loss(self, model, x, y, generator):
        u, index = self._draw(generator)
        u_views = [self.augment(u, generator) for _ in range(self.k)]
        with torch.no_grad():
            guess = torch.stack([F.softmax(model(v), dim=1) for v in u_views]).mean(0)
            guess = sharpen(guess, self.temperature)
            self._score_targets(guess, index)
        x_aug = self.augment(x, generator)
        inputs = torch.cat([x_aug, *u_views])
        targets = torch.cat([F.one_hot(y, self.num_classes).to(guess.dtype), guess.repeat(self.k, 1)])
        lam = sample_lambda(self.alpha, generator=generator)
        mixed = mixup(inputs, targets, lam=max(float(lam), 1.0 - float(lam)), generator=generator)
        n = x.shape[0]
        if self.interleaved:
            if n != self.batch_size:
                raise ValueError(f"interleaved MixMatch needs labelled batches of batch_size={self.batch_size} "
                                 f"examples, got {n}")
            logits = torch.cat(interleave([model(piece) for piece in interleave(list(mixed.x.split(n)))]))
        else:
            logits = model(mixed.x)
        labelled = mixup_cross_entropy(logits[:n], _rows(mixed, slice(0, n)))
        soft = torch.lerp(mixed.y_b[n:], mixed.y_a[n:], mixed.lam)
        unlabelled = F.mse_loss(F.softmax(logits[n:], dim=1), soft)
        return labelled + self._weight() * unlabelled


def _rows(batch: MixedBatch, rows: slice) -> MixedBatch:
    """The part ``rows`` of a mixed batch (the same lambda, the partners' labels kept)."""
    return MixedBatch(batch.x[rows], batch.y_a[rows], batch.y_b[rows], batch.lam, batch.index[rows])
