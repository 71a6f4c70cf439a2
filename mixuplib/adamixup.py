"""AdaMixup (Guo, Mao and Zhang, 2019): learn where to mix, and penalise manifold intrusion.

Two learned parts sit beside the classifier:

- a *policy-region generator* looks at a pair of examples and outputs a region
  ``[alpha, alpha + delta]`` of [0, 1] (a softmax over three outputs, the third discarded, so
  ``alpha + delta <= 1``); the mixing coefficient is ``lambda = alpha + u * delta`` with
  ``u ~ U(0, 1)``, one per pair;
- an *intrusion discriminator* (a two-way head on the classifier's own features) learns to tell
  mixed examples (label 0) from real ones, both the originals of the mixed pairs and "unseen"
  examples that were not mixed (label 1).

The batch is split in two: the first half is mixed, the second half is the unseen set. As in
the official code (``SITE5039/AdaMixUp``: one permutation of the whole batch, then the split),
each example of the first half takes its partner from the whole batch, so an unseen example
can be a partner: it is never classified on its own, but its label enters the mixes it joins.
The official code also runs the classifier and the discriminator through the trunk in two
passes; this one runs one pass over originals, mixes and unseen examples, so with batch norm
the two heads see one set of batch statistics instead of two.
Classifier, generator and discriminator minimise one joint loss: the classification loss on
the originals and the mixes, plus the discriminator's cross-entropy. A mix that lands on the
data manifold of another class is hard to tell from a real example, so the joint loss pushes
the generator away from such regions. The paper argues that the generator cannot escape by
not mixing: a mix at lambda near 0 or 1 is labelled "mix" while it looks like its original,
labelled "real", so the discriminator's loss does not reward it. Chapter 4 measures where the
learned policy actually goes (here: towards weak mixing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .losses import mixup_cross_entropy
from .mixing import MixedBatch, mix
from .method import Method

__all__ = ["PolicyRegionGenerator", "IntrusionDiscriminator", "AdaMixup", "HalfBatch", "small_policy_body",
           "intrusion_labels"]


def small_policy_body(in_channels: int, features: int = 64) -> nn.Sequential:
    """A small CNN from a pair of images ``(B, 2 * in_channels, H, W)`` to ``(B, features)``."""
    return nn.Sequential(
        nn.Conv2d(2 * in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        nn.Flatten(), nn.Linear(32 * 16, features), nn.ReLU(),
    )


class PolicyRegionGenerator(nn.Module):
    """Maps a pair ``(x, x_partner)`` to its policy region ``(alpha, delta)``.

    Args:
        body: maps the pair, concatenated along channels ``(B, 2C, ...)``, to ``(B, features)``;
            the paper uses a copy of the classifier's backbone with a 100-unit output.
        features: the body's output width.
    """

    def __init__(self, body: nn.Module, features: int):
        super().__init__()
        self.body = body
        self.region = nn.Linear(features, 3)

    def forward(self, x: torch.Tensor, partner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``alpha`` and ``delta``, each ``(B,)``, with ``alpha, delta >= 0`` and ``alpha + delta <= 1``."""
        if x.shape != partner.shape:
            raise ValueError(f"x and partner must have the same shape, got {tuple(x.shape)} and {tuple(partner.shape)}")
        weights = F.softmax(self.region(self.body(torch.cat([x, partner], dim=1))), dim=1)
        return weights[:, 0], weights[:, 1]

    @staticmethod
    def draw_lambda(alpha: torch.Tensor, delta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``lambda = alpha + u * delta``, ``u ~ U(0, 1)`` per example; differentiable in alpha and delta."""
        u = torch.rand(alpha.shape, generator=generator).to(device=alpha.device, dtype=alpha.dtype, non_blocking=True)
        return alpha + u * delta


class IntrusionDiscriminator(nn.Module):
    """A two-way head on the classifier's features: logit 1 = "a real example", 0 = "a mix".

    Features ``(B, F)`` or feature maps ``(B, F, H, W)`` (average-pooled first).
    """

    def __init__(self, features: int):
        super().__init__()
        self.head = nn.Linear(features, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() == 4:
            features = features.mean(dim=(2, 3))
        return self.head(features.flatten(1))


def intrusion_labels(n_unseen: int, n_originals: int, n_mixed: int, device=None) -> torch.Tensor:
    """Discriminator targets for ``[unseen, originals, mixed]``: 1, 1, 0."""
    return torch.cat([torch.ones(n_unseen + n_originals, dtype=torch.long, device=device),
                      torch.zeros(n_mixed, dtype=torch.long, device=device)])


class AdaMixup(Method):
    """AdaMixup as a training method for any stage-wise classifier.

    Args:
        policy: the :class:`PolicyRegionGenerator`.
        discriminator: the :class:`IntrusionDiscriminator`, reading the output of
            ``model[:-1]`` (everything but the last stage).
    """

    def __init__(self, policy: PolicyRegionGenerator, discriminator: IntrusionDiscriminator):
        super().__init__()
        self.policy, self.discriminator = policy, discriminator
        self._region_sums = None

    def loss(self, model, x, y, generator):
        if x.shape[0] < 4:
            raise ValueError(f"AdaMixup needs a batch of at least 4 examples (half mixed, half unseen), got {x.shape[0]}")
        half = x.shape[0] // 2
        x_mix, y_mix, x_unseen = x[:half], y[:half], x[half:]
        # The official pairing: one permutation of the whole batch, of which the first half's partners are used.
        index = torch.randperm(x.shape[0], generator=generator).to(x.device, non_blocking=True)
        alpha, delta = self.policy(x_mix, x.index_select(0, index[:half]))
        lam = PolicyRegionGenerator.draw_lambda(alpha, delta, generator)
        # Drawn here, valid by construction: applied without the checks that would sync a GPU. The unseen half keeps
        # weight 1 on itself (it is not mixed); only the first half's mixes are used.
        batch = mix(x, y, torch.cat([lam, torch.ones(x.shape[0] - half, device=lam.device, dtype=lam.dtype)]), index)
        batch = MixedBatch(batch.x[:half], batch.y_a[:half], batch.y_b[:half], batch.lam[:half], batch.index[:half])

        # One pass of the trunk over originals, mixes and unseen examples feeds both heads.
        features = model[:-1](torch.cat([x_mix, batch.x, x_unseen]))
        logits = model[-1](features[: 2 * half])
        classify = 0.5 * (F.cross_entropy(logits[:half], y_mix) + mixup_cross_entropy(logits[half:], batch))
        real_or_mix = self.discriminator(torch.cat([features[2 * half:], features[:half], features[half:2 * half]]))
        real = intrusion_labels(x_unseen.shape[0], half, half, x.device)
        intrusion = F.cross_entropy(real_or_mix, real)

        lam = lam.detach()
        told_apart = (real_or_mix.detach().argmax(1) == real).float()
        # Summed on the device, read once per epoch: recording them costs no host sync per step.
        sums = torch.stack([alpha.detach().mean(), delta.detach().mean(), torch.minimum(lam, 1 - lam).mean(),
                            classify.detach().float(), intrusion.detach().float(), told_apart.mean(),
                            torch.ones((), device=x.device)])
        self._region_sums = sums if self._region_sums is None else self._region_sums + sums
        return classify + intrusion

    def epoch_end(self, epoch):
        """Epoch means over steps: ``region_alpha``, ``region_delta``; ``lambda_minor``, the mean
        of min(lambda, 1 - lambda) (how strongly pairs were mixed; the mean region alone hides
        pairs mixed at lambda near 0.1 and others near 0.9); the two terms of the loss,
        ``loss_classify`` and ``loss_intrusion``; and ``discriminator_accuracy``, the share of
        unseen, original and mixed examples the discriminator labels right."""
        if self._region_sums is None:
            return {}
        alpha, delta, minor, classify, intrusion, accuracy, steps = self._region_sums.tolist()
        self._region_sums = None
        return {"region_alpha": alpha / steps, "region_delta": delta / steps, "lambda_minor": minor / steps,
                "loss_classify": classify / steps, "loss_intrusion": intrusion / steps,
                "discriminator_accuracy": accuracy / steps}


class HalfBatch(Method):
    """A control for AdaMixup's halved supervised signal: ``method`` trained on the first half of
    every batch only, the half AdaMixup classifies; the second half is never used.

    Args:
        method: the :class:`~mixuplib.method.Method` to train on half batches (ERM, mixup, ...).
    """

    def __init__(self, method: Method):
        super().__init__()
        if not isinstance(method, Method):
            raise TypeError(f"method must be a mixuplib Method, got {type(method).__name__}")
        self.method = method

    def loss(self, model, x, y, generator):
        if x.shape[0] < 2:
            raise ValueError(f"HalfBatch needs a batch of at least 2 examples, got {x.shape[0]}")
        half = x.shape[0] // 2
        return self.method.loss(model, x[:half], y[:half], generator)

    def epoch_end(self, epoch):
        return self.method.epoch_end(epoch)
