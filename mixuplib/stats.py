"""Paired comparisons over seeds: a difference, its 95 % interval, and a verdict in words.

Two methods trained with the same seed see the same batches in the same order and start from
the same weights, so their runs are compared seed by seed. For a metric that is a mean over a
finite test set (error, NLL, attack success) the interval has two sources of uncertainty:

- **seeds** (training randomness): the per-seed differences ``d_s`` of the test-set means,
  ``se_seed² = var(d_s) / n`` with the sample variance (ddof = 1) and Student's t with n - 1
  degrees of freedom, as in a paired t-test (tested against :func:`scipy.stats.ttest_rel`);
- **test images** (the test set is one sample of the test distribution): the per-image
  differences averaged over seeds, ``se_image² = var_i(mean_s d_si) / N``, with the normal
  quantile, as in a paired test over images.

The two are independent sources and their half-widths add in quadrature::

    half = sqrt((t_{n-1} · se_seed)² + (z · se_image)²)

which is the interval of a two-way (seed × image) additive model. It does not cover what the
runs share: the one training subset, the one recipe, the one architecture. A metric given as
one number per seed (ECE, a training loss) has the seed term alone. A simulation in the tests
checks that the interval covers the true difference about 95 % of the time.

A :class:`Comparison` then gives its verdict: ``"<A> lower"``, ``"<B> lower"``, or ``"not
resolved at n = …"`` when the interval contains 0. A tie is only ever an equivalence:
:meth:`Comparison.within` holds when the whole interval lies inside ``±delta``, with ``delta``
fixed before the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Comparison", "paired", "LEVEL"]

LEVEL = 0.95  # every interval in the book


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b`` on one metric, seed by seed.

    Attributes:
        a, b: the two names, as a verdict prints them.
        difference: mean over seeds of (a - b), in the metric's unit.
        low, high: its 95 % interval (``-inf, inf`` with one seed: nothing to resolve).
        seeds: the seeds both were run with, in order.
        n_examples: test examples per run the metric averages, or ``None`` for a metric given
            as one number per seed (then the interval covers the seeds alone).
    """

    a: str
    b: str
    difference: float
    low: float
    high: float
    seeds: tuple[int, ...]
    n_examples: int | None = None

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def verdict(self) -> str:
        """``"<a> lower"``, ``"<b> lower"`` or ``"not resolved at n = <n>"``."""
        if self.high < 0:
            return f"{self.a} lower"
        if self.low > 0:
            return f"{self.b} lower"
        return f"not resolved at n = {self.n}"

    def lower(self, name: str) -> bool:
        """Whether the interval shows ``name`` (``a`` or ``b``) lower than the other."""
        if name not in (self.a, self.b):
            raise ValueError(f"name must be {self.a!r} or {self.b!r}, got {name!r}")
        return self.high < 0 if name == self.a else self.low > 0

    def within(self, delta: float) -> bool:
        """Whether the two are equivalent within ``±delta``: the whole interval lies inside it."""
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not math.isfinite(delta) or delta <= 0:
            raise ValueError(f"delta must be a finite number > 0, fixed before the run, got {delta!r}")
        return -delta <= self.low and self.high <= delta

    def describe(self, precision: int = 2, unit: str = "") -> str:
        """One line for a reader, e.g. ``"mixup - ERM = -0.85 [-1.40, -0.30] % (seeds [0, 1, 2], 2000 test
        images each): mixup lower"``."""
        covers = f", {self.n_examples} test images each" if self.n_examples else ""
        return (f"{self.a} - {self.b} = {self.difference:+.{precision}f} [{self.low:+.{precision}f}, "
                f"{self.high:+.{precision}f}]{unit} (95 % interval; n = {self.n}, seeds {list(self.seeds)}{covers}): "
                f"{self.verdict}")


def paired(a, b, *, seeds: Sequence[int], names: tuple[str, str] = ("A", "B"), level: float = LEVEL) -> Comparison:
    """Compare per-seed runs of two methods on one metric (lower or higher, the verdict says which is lower).

    Args:
        a, b: the metric of each seed, ``(n,)``; or its per-example values ``(n, N)`` on the
            same ``N`` test examples (e.g. 100 x the 0/1 error of each image), whose mean over
            examples is the metric. Row ``s`` of both belongs to ``seeds[s]``.
        seeds: the seeds, in row order; ``a`` and ``b`` must come from the same seeds.
        names: how the verdict names ``a`` and ``b``.
        level: the interval's coverage.

    Returns:
        The :class:`Comparison` of ``a - b``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim not in (1, 2) or a.shape[0] == 0:
        raise ValueError(f"a and b must both have shape (seeds,) or (seeds, examples) with at least one seed, "
                         f"got {a.shape} and {b.shape}")
    seeds = tuple(int(s) for s in seeds)
    if len(seeds) != a.shape[0] or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must name each of the {a.shape[0]} rows once, got {list(seeds)}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    from scipy import stats

    per_example = a - b
    per_seed = per_example.mean(axis=1) if a.ndim == 2 else per_example
    difference = float(per_seed.mean())
    n = len(seeds)
    if n < 2:
        return Comparison(names[0], names[1], difference, -math.inf, math.inf, seeds, a.shape[1] if a.ndim == 2 else None)
    seed_half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(per_seed.std(ddof=1)) / math.sqrt(n)
    image_half = 0.0
    if a.ndim == 2:
        over_seeds = per_example.mean(axis=0)
        image_half = float(stats.norm.ppf(0.5 + level / 2)) * float(over_seeds.std(ddof=1)) / math.sqrt(len(over_seeds))
    half = math.hypot(seed_half, image_half)
    return Comparison(names[0], names[1], difference, difference - half, difference + half, seeds,
                      a.shape[1] if a.ndim == 2 else None)
