"""Semi-supervised learning with mixup: ICT and MixMatch as training methods.

Both take the labelled batch from the training loop and draw an unlabelled batch of their own
from ``unlabeled`` with the loop's generator, so a run is as reproducible as any other. The
weight of the unlabelled loss ramps up over ``rampup_steps`` steps, since early predictions on
unlabelled data are mostly noise: along a sigmoid-shaped curve (:func:`rampup`, the mean-teacher
code's, which ICT's code keeps) or linearly (:func:`linear_rampup`, MixMatch's code).

Both keep an exponential moving average of the student's weights (:func:`ema_update`): ICT's
teacher makes its targets, MixMatch's average is what its paper evaluates. Each is a *readout*
(:meth:`~mixuplib.method.Method.readouts`): a study scores it beside the student as the run
``"ICT (teacher)"`` or ``"MixMatch (EMA)"``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .losses import mixup_cross_entropy, mixup_loss
from .mixing import MixedBatch, check_alpha, draw_mixing, mix, mixup, sample_lambda
from .method import Method

__all__ = ["sharpen", "rampup", "linear_rampup", "RAMPS", "ema_update", "interleave", "ICT", "MixMatch"]


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


def linear_rampup(step: int, length: int) -> float:
    """``step / length`` clipped to [0, 1], as MixMatch's code ramps its unlabelled weight."""
    if length <= 0:
        return 1.0
    return min(max(step / length, 0.0), 1.0)


RAMPS = {"sigmoid": rampup, "linear": linear_rampup}


@torch.no_grad()
def ema_update(average: nn.Module, model: nn.Module, decay: float, *, buffers: bool) -> None:
    """``average <- decay * average + (1 - decay) * model``, parameter by parameter.

    With ``buffers`` the floating-point buffers (batch-norm statistics) are averaged the same way
    and the others copied; without, ``average`` keeps its own buffers, which its own forward
    passes in training mode update, as the mean-teacher code that ICT builds on does.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must lie in [0, 1], got {decay!r}")
    pairs = list(zip(average.parameters(), model.parameters()))
    if buffers:
        pairs += list(zip(average.buffers(), model.buffers()))
    for a, m in pairs:
        if a.is_floating_point():
            a.lerp_(m, 1.0 - decay)
        else:
            a.copy_(m)


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
                 hidden_labels: torch.Tensor | None, ramp: str):
        super().__init__()
        if ramp not in RAMPS:
            raise ValueError(f"ramp must be one of {sorted(RAMPS)}, got {ramp!r}")
        if unlabeled.dim() < 2 or unlabeled.shape[0] < batch_size:
            raise ValueError(f"unlabeled must hold at least batch_size={batch_size} examples (N, ...), got shape {tuple(unlabeled.shape)}")
        if hidden_labels is not None and hidden_labels.shape != unlabeled.shape[:1]:
            raise ValueError(f"hidden_labels must have shape ({unlabeled.shape[0]},), one per unlabelled example, "
                             f"got {tuple(hidden_labels.shape)}")
        self.unlabeled, self.batch_size, self.weight, self.rampup_steps = unlabeled, batch_size, weight, rampup_steps
        self.hidden_labels, self.ramp = hidden_labels, ramp
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

    def _follow(self, average: nn.Module, model: nn.Module, decay: float, *, buffers: bool) -> None:
        """Fold the student's last optimiser step into ``average``: a copy of it at the first
        step, then :func:`ema_update`."""
        if self.step == 0:
            with torch.no_grad():
                average.load_state_dict(model.state_dict())
        else:
            ema_update(average, model, decay, buffers=buffers)

    def _weight(self) -> float:
        w = self.weight * RAMPS[self.ramp](self.step, self.rampup_steps)
        self.step += 1
        return w


class ICT(_Unlabelled):
    """Interpolation Consistency Training (Verma et al., 2019).

    The student's prediction on a mix of two unlabelled examples should equal the mix of a
    mean teacher's predictions on them. The labelled examples get the cross-entropy, or with
    ``sup_alpha`` input mixup's loss, as the official CIFAR-10 command runs it
    (``--mixup_sup_alpha 1.0``). The consistency loss is the squared error between the
    student's and the mixed probabilities, averaged over examples and classes, as the official
    code scales it (its sum over classes divided by K), so ``weight`` is on the official scale.

    The teacher's decay warms up as ``min(1 - 1 / (t + 1), ema)`` after ``t`` optimiser steps,
    so early on it follows the student closely; it averages the parameters only and keeps its own
    batch-norm statistics, as the official code does. It is the readout ``"teacher"``, the
    network the paper reports.

    Args:
        unlabeled: inputs ``(N, ...)`` without labels, on the model's device.
        teacher: a network of the student's architecture; its weights are set to the student's
            at the first step, then follow their exponential moving average.
        alpha: Beta parameter for the unlabelled mixes (1.0 in the paper for CIFAR-10).
        weight: the consistency weight at the end of the ramp (100 in the official CIFAR-10 command).
        ema: the teacher's decay once warmed up (0.999 in the official command).
        sup_alpha: Beta parameter of input mixup on the labelled batch; None for plain
            cross-entropy.
        batch_size: unlabelled examples per step.
        rampup_steps: steps over which the consistency weight ramps up.
        hidden_labels: the true classes ``(N,)`` of ``unlabeled``, to report how often the
            teacher is right (``target_accuracy`` per epoch); never used in the loss.
        ramp: ``"sigmoid"`` (:func:`rampup`, the official code's) or ``"linear"``.
    """

    def __init__(self, unlabeled: torch.Tensor, teacher: nn.Module, *, alpha: float = 1.0, weight: float = 100.0,
                 ema: float = 0.999, sup_alpha: float | None = None, batch_size: int = 128, rampup_steps: int = 1000,
                 hidden_labels: torch.Tensor | None = None, ramp: str = "sigmoid"):
        super().__init__(unlabeled, batch_size, weight, rampup_steps, hidden_labels, ramp)
        if not 0.0 <= ema <= 1.0:
            raise ValueError(f"ema must lie in [0, 1], got {ema!r}")
        self.alpha, self.ema = check_alpha(alpha), ema
        self.sup_alpha = None if sup_alpha is None else check_alpha(sup_alpha)
        self.teacher = teacher.requires_grad_(False)

    def readouts(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher}

    def _update_teacher(self, model: nn.Module) -> None:
        self._follow(self.teacher, model, min(1.0 - 1.0 / (self.step + 1), self.ema), buffers=False)

    def _supervised(self, model, x, y, generator):
        if self.sup_alpha is None:
            return F.cross_entropy(model(x), y)
        batch = mixup(x, y, self.sup_alpha, generator=generator)
        return mixup_loss(model(batch.x), batch)

    def loss(self, model, x, y, generator):
        self._update_teacher(model)  # the student's last optimiser step is folded in here
        u, index = self._draw(generator)
        with torch.no_grad():
            self.teacher.train(model.training)
            targets = F.softmax(self.teacher(u), dim=1)
            self._score_targets(targets, index)
        mixed = mixup(u, targets, self.alpha, generator=generator)
        mixed_targets = torch.lerp(mixed.y_b, mixed.y_a, mixed.lam)
        consistency = F.mse_loss(F.softmax(model(mixed.x), dim=1), mixed_targets)
        return self._supervised(model, x, y, generator) + self._weight() * consistency


class MixMatch(_Unlabelled):
    """MixMatch (Berthelot et al., 2019).

    Guess a label for each unlabelled example (the mean prediction over ``k`` augmentations,
    sharpened with ``temperature``), then mix the labelled batch and the augmented unlabelled
    batches among themselves with ``lambda' = max(lambda, 1 - lambda)``, so that each mix stays
    closer to its own example; the official code draws one ``lambda`` per example. Labelled
    mixes are scored with cross-entropy, unlabelled mixes with the squared error between
    prediction and guessed label. With ``average``, an exponential moving average of the
    weights is kept as the readout ``"EMA"``, the network the paper evaluates.

    Args:
        unlabeled: inputs ``(N, ...)`` without labels, on the model's device.
        augment: ``augment(x, generator) -> x``, the stochastic augmentation.
        augment_labelled: also augment the labelled batch; False where the batches come
            augmented already (``Recipe(augment=True)``), as in the official code, whose data
            pipeline augments them.
        num_classes: K.
        k: augmentations per unlabelled example (2 in the paper).
        temperature: sharpening temperature (0.5).
        alpha: Beta parameter (0.75).
        weight: the unlabelled loss weight at the end of the ramp (75 for CIFAR-10).
        batch_size: unlabelled examples per step.
        rampup_steps: steps over which the unlabelled weight ramps up (16,384 in the code).
        ramp: ``"linear"`` (:func:`linear_rampup`, the official code's) or ``"sigmoid"``.
        per_example: one ``lambda`` per example (the official code); False for one per batch.
        average: a network of the student's architecture to hold the moving average of its
            weights and batch-norm statistics (set to the student's at the first step); None
            keeps no average.
        ema: the average's decay (0.999 in the official code).
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
                 interleaved: bool = False, ramp: str = "linear", per_example: bool = True,
                 average: nn.Module | None = None, ema: float = 0.999, augment_labelled: bool = True):
        super().__init__(unlabeled, batch_size, weight, rampup_steps, hidden_labels, ramp)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not 0.0 <= ema <= 1.0:
            raise ValueError(f"ema must lie in [0, 1], got {ema!r}")
        sharpen(torch.ones(1, 2) / 2, temperature)  # validates temperature now
        self.augment, self.num_classes, self.k = augment, num_classes, k
        self.temperature, self.alpha = temperature, check_alpha(alpha)
        self.interleaved, self.per_example, self.ema = interleaved, per_example, ema
        self.augment_labelled = augment_labelled
        self.average = None if average is None else average.requires_grad_(False)

    def readouts(self) -> dict[str, nn.Module]:
        return {} if self.average is None else {"EMA": self.average}

    def _update_average(self, model: nn.Module) -> None:
        if self.average is not None:
            self._follow(self.average, model, self.ema, buffers=True)

    def loss(self, model, x, y, generator):
        self._update_average(model)  # the student's last optimiser step is folded in here
        u, index = self._draw(generator)
        u_views = [self.augment(u, generator) for _ in range(self.k)]
        with torch.no_grad():
            guess = torch.stack([F.softmax(model(v), dim=1) for v in u_views]).mean(0)
            guess = sharpen(guess, self.temperature)
            self._score_targets(guess, index)
        x_aug = self.augment(x, generator) if self.augment_labelled else x
        inputs = torch.cat([x_aug, *u_views])
        targets = torch.cat([F.one_hot(y, self.num_classes).to(guess.dtype), guess.repeat(self.k, 1)])
        n = x.shape[0]
        if self.per_example:
            lam, partners = draw_mixing(inputs.shape[0], self.alpha, per_sample=True, generator=generator)
            mixed = mix(inputs, targets, torch.maximum(lam, 1.0 - lam), partners)
        else:
            lam = sample_lambda(self.alpha, generator=generator)
            mixed = mixup(inputs, targets, lam=max(float(lam), 1.0 - float(lam)), generator=generator)
        if self.interleaved:
            if n != self.batch_size:
                raise ValueError(f"interleaved MixMatch needs labelled batches of batch_size={self.batch_size} "
                                 f"examples, got {n}")
            logits = torch.cat(interleave([model(piece) for piece in interleave(list(mixed.x.split(n)))]))
        else:
            logits = model(mixed.x)
        labelled = mixup_cross_entropy(logits[:n], _rows(mixed, slice(0, n)))
        weight = mixed.lam[n:, None] if self.per_example else mixed.lam
        soft = torch.lerp(mixed.y_b[n:], mixed.y_a[n:], weight)
        unlabelled = F.mse_loss(F.softmax(logits[n:], dim=1), soft)
        return labelled + self._weight() * unlabelled


def _rows(batch: MixedBatch, rows: slice) -> MixedBatch:
    """The part ``rows`` of a mixed batch (its lambda, the partners' labels kept)."""
    lam = batch.lam[rows] if batch.lam.dim() == 1 else batch.lam
    return MixedBatch(batch.x[rows], batch.y_a[rows], batch.y_b[rows], lam, batch.index[rows])
