"""One study: several methods × seeds on one split and one recipe, and what a chapter reads from it.

A chapter states its experiment in one call and then reads metrics and comparisons by name::

    runs = study(split, {"ERM": lambda net: mx.ERM(), "mixup": lambda net: mx.InputMixup(1.0)},
                 seeds=seeds, recipe=recipe)
    runs.table(["test_error", "test_nll"], caption="...")          # mean ± std, n
    versus = runs.compare("mixup", "ERM", "test_error")              # a paired 95 % interval
    claims.finding("mixup lowers the test error", versus, lower="mixup", unit=" %")

Every method trains with the same seeds, so seed ``s`` of two methods saw the same batches in
the same order and started from the same weights: comparisons are paired. Each run keeps its
per-epoch history and its final test logits, so metrics measured on the test set are compared
per test image as well (:func:`mixuplib.stats.paired`); the first seed's model is kept for
figures. A method's readouts (:meth:`~mixuplib.method.Method.readouts`, e.g. ICT's teacher) are
scored as runs of their own, named ``"ICT (teacher)"``, paired with the others like any run.
Metrics are named as in :data:`mixuplib.metrics.METRICS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .data import Split
from .metrics import METRICS, classification_metrics, metric
from .models import predict
from .results import Table, seed_table
from .stats import Comparison, paired
from . import runcache
from .history import History
from .method import Method
from .recipe import Recipe
from .train import Callback, fit

__all__ = ["Run", "Study", "study", "train_on"]


@dataclass
class Run:
    """One trained run: its seed, per-epoch history, final test logits ``(N, K)`` (CPU, float32),
    and its trained model where the study keeps every model (``keep_models=True``)."""

    seed: int
    history: History
    test_logits: torch.Tensor
    model: nn.Module | None = None


@dataclass
class Study:
    """The runs of several methods × seeds on one split and recipe.

    Attributes:
        split: the data, with the test labels the logits are scored against: every seed's, or the
            first seed's where the study drew its data per seed.
        recipe: the training recipe every run used.
        seeds: the seeds, the same for every method.
        runs: ``{method: [Run per seed, in seed order]}``, a readout as ``"method (readout)"``
            right after its method (its history is the method's).
        models: ``{method: the first seed's trained model}``, for figures.
        seed_splits: ``{seed: Split}`` where each seed drew its own data (``study`` with a function
            of the seed), else empty; :meth:`split_of` reads it.
    """

    split: Split
    recipe: Recipe
    seeds: list[int]
    runs: dict[str, list[Run]] = field(default_factory=dict)
    models: dict[str, nn.Module] = field(default_factory=dict)
    seed_splits: dict[int, Split] = field(default_factory=dict)

    def split_of(self, seed: int) -> Split:
        """The data seed ``seed`` trained and was scored on."""
        if seed not in self.seeds:
            raise ValueError(f"seed must be one of the study's seeds {self.seeds}, got {seed!r}")
        return self.seed_splits.get(seed, self.split)

    def _runs(self, method: str) -> list[Run]:
        if method not in self.runs:
            raise ValueError(f"method must be one of {list(self.runs)}, got {method!r}")
        return self.runs[method]

    def per_example(self, method: str, name: str) -> np.ndarray:
        """``(seeds, N)``: ``method``'s per-test-example values of the metric ``name``, whose
        mean over a row is the metric of that seed's final model."""
        per = metric(name).per_example
        if per is None:
            raise ValueError(f"metric {name!r} is one number per run and has no per-example values; those with them: "
                             f"{[k for k, m in METRICS.items() if m.per_example]}")
        return np.stack([per(run.test_logits, self.split_of(run.seed).y_test.cpu()).numpy()
                         for run in self._runs(method)]).astype(float)

    def last(self, method: str, name: str) -> list[float]:
        """``method``'s metric ``name`` after the last epoch, one value per seed: from the final
        test logits for test metrics, else from the history (e.g. ``train_loss``)."""
        metric(name)
        if name.startswith("test_"):
            key = name[len("test_"):]
            return [classification_metrics(run.test_logits, self.split_of(run.seed).y_test.cpu())[key]
                    for run in self._runs(method)]
        return [float(run.history.last[name]) for run in self._runs(method)]

    def trained(self, method: str) -> list[nn.Module]:
        """``method``'s trained models, one per seed in seed order (needs ``keep_models=True``)."""
        models = [run.model for run in self._runs(method)]
        if any(m is None for m in models):
            raise ValueError("trained needs every run's model: call study(..., keep_models=True)")
        return models

    def epochs(self, method: str, name: str) -> np.ndarray:
        """``(seeds, epochs)``: the metric ``name`` after every epoch, from the histories."""
        return np.array([run.history.column(name) for run in self._runs(method)], dtype=float)

    def on_seeds(self, seeds: Sequence[int]) -> "Study":
        """The same study restricted to ``seeds`` (a subset of its own, in its order): the base of a
        side experiment that trains on fewer seeds and is compared seed by seed with these runs."""
        seeds = [int(s) for s in seeds]
        if not seeds or not set(seeds) <= set(self.seeds):
            raise ValueError(f"seeds must be a non-empty subset of the study's seeds {self.seeds}, got {seeds!r}")
        keep = [i for i, s in enumerate(self.seeds) if s in seeds]
        # ``models`` holds the first seed's networks: they stay only if that seed does.
        kept = [self.seeds[i] for i in keep]
        return Study(self.split_of(kept[0]), self.recipe, kept,
                     {name: [done[i] for i in keep] for name, done in self.runs.items()},
                     dict(self.models) if keep[0] == 0 else {},
                     {s: d for s, d in self.seed_splits.items() if s in kept})

    def compare(self, a: str, b: str, name: str) -> Comparison:
        """``a`` against ``b`` on the metric ``name``, seed by seed, with a 95 % interval that also
        covers the test images where the metric has per-example values."""
        if metric(name).per_example is not None:
            return paired(self.per_example(a, name), self.per_example(b, name), seeds=self.seeds, names=(a, b))
        return paired(self.last(a, name), self.last(b, name), seeds=self.seeds, names=(a, b))

    def record(self, names: Sequence[str]) -> dict:
        """``{method: {"seeds": [...], name: [per-seed values]}}``: the per-seed numbers with their
        seeds, for a chapter's results JSON."""
        return {m: {"seeds": list(self.seeds), **{n: self.last(m, n) for n in names}} for m in self.runs}

    def table(self, names: Sequence[str], *, caption: str, label: str | None = None) -> Table:
        """One row per method: each metric as mean ± sample std (ddof = 1) at its precision, and n
        (:func:`~mixuplib.results.seed_table`)."""
        heading = {n: f"{metric(n).words}{metric(n).unit}" for n in names}
        rows = {m: {heading[n]: self.last(m, n) for n in names} for m in self.runs}
        return seed_table(rows, caption=caption, label=label,
                          precisions={heading[n]: metric(n).precision for n in names})

def _check_recipe(recipe) -> None:
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a mixuplib.Recipe, got {type(recipe).__name__}")


def train_on(split: Split, method: Method | Callable[[nn.Module], Method], *, seed: int, recipe: Recipe,
             callbacks: Sequence[Callback] = (), checkpoint: str | None = None,
             test_each_epoch: bool = True) -> tuple[nn.Sequential, History]:
    """One run of ``recipe`` outside a study: seed, build ``recipe.model`` for ``split``, train it
    with ``method`` (a :class:`~mixuplib.method.Method` or a factory of one, see
    :meth:`~mixuplib.recipe.Recipe.start`). Never cached.

    The test set is scored after every epoch unless ``test_each_epoch`` is False (a run scored
    only at its end saves the time; its weights are the same). Returns ``(model, history)``.
    """
    _check_recipe(recipe)
    net, method, batches = recipe.start(split, method, seed=seed)
    test = (split.x_test, split.y_test) if test_each_epoch else None
    return net, fit(net, method, batches, test, recipe, seed=seed, checkpoint=checkpoint, callbacks=callbacks)


def study(split: Split | Callable[[int], Split], methods: dict[str, Callable[[nn.Module], Method]], *,
          seeds: Sequence[int], recipe: Recipe, test_each_epoch: bool = True, keep_models: bool = False,
          callbacks: Sequence[Callback] = ()) -> Study:
    """Train every method of ``methods`` with every seed on ``split`` under ``recipe``.

    Args:
        split: training and test data, on the device the runs use; or a function of the seed that
            returns that seed's own :class:`~mixuplib.data.Split` (a toy drawn anew per seed), so the
            spread over seeds covers the draw of the data too. Every method of a seed trains on the
            same data either way: comparisons stay paired.
        methods: ``{name: factory}``; each factory receives the built model and returns the
            :class:`~mixuplib.method.Method` for that run.
        seeds: the seeds, the same for every method (paired runs).
        recipe: the :class:`~mixuplib.recipe.Recipe` of every run.
        test_each_epoch: evaluate the test set after every epoch (for curves); the final test
            logits are kept either way.
        keep_models: keep every run's trained model (:meth:`Study.trained`), e.g. to attack each
            seed's network; otherwise only the first seed's (``Study.models``).
        callbacks: passed to :func:`~mixuplib.train.fit`; a study with callbacks is never cached.

    With ``MIXUPLIB_RUN_CACHE`` set (the book's runner and test suite set it), a run that was
    already trained with the same data, initial weights, method, recipe, seed and numerics is
    loaded instead of trained again (:mod:`mixuplib.runcache`); the results are the same bytes.
    """
    _check_recipe(recipe)
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must list distinct seeds, at least one, got {seeds!r}")
    if not methods:
        raise ValueError("methods must name at least one method factory, got none")
    splits = {seed: _split_for(split, seed) for seed in seeds}
    cache = runcache.from_environment() if not callbacks else None
    todo, trained = [(name, seed) for name in methods for seed in seeds], {}
    # First pass: skip a run another process is training (a chapter beside this one); then wait for it.
    for wait in (False, True):
        later = []
        for name, seed in todo:
            try:
                trained[name, seed] = _run(splits[seed], methods[name], seed, recipe, test_each_epoch, callbacks, cache, wait)
            except runcache.Busy:
                later.append((name, seed))
        todo = later
    result = Study(splits[seeds[0]], recipe, seeds, seed_splits=splits if callable(split) else {})
    for name in methods:
        for seed in seeds:
            net, method, history, _ = trained[name, seed]
            for run_name, scored in {name: net, **{f"{name} ({r})": m for r, m in method.readouts().items()}}.items():
                logits = predict(scored, splits[seed].x_test).float().cpu()
                result.runs.setdefault(run_name, []).append(Run(seed, history, logits, scored if keep_models else None))
                if seed == seeds[0]:
                    result.models[run_name] = scored
    # The random state of the last run in order, whichever ran last, so later draws do not depend on the order.
    runcache.set_random_state(trained[list(methods)[-1], seeds[-1]][-1])
    return result


def _split_for(split, seed: int) -> Split:
    """``split`` itself, or the Split a function of the seed returns for ``seed``."""
    chosen = split(seed) if callable(split) else split
    if not isinstance(chosen, Split):
        raise TypeError(f"split must be a mixuplib Split or a function of the seed returning one; for seed {seed} "
                        f"got {type(chosen).__name__}")
    return chosen


def _run(split: Split, factory, seed: int, recipe: Recipe, test_each_epoch: bool, callbacks, cache, wait: bool):
    """``(model, method, history, random state at its end)`` of one run, trained, or loaded from ``cache``."""
    net, method, batches = recipe.start(split, factory, seed=seed)
    tensors = (split.x_train, split.y_train, split.x_test, split.y_test)
    key = cache and runcache.run_key(tensors, net, method, seed=seed, recipe=recipe, test_each_epoch=test_each_epoch)
    test = (split.x_test, split.y_test) if test_each_epoch else None

    def train() -> History:
        return fit(net, method, batches, test, recipe, seed=seed, callbacks=callbacks)

    if not key:
        history = train()
        return net, method, history, runcache.random_state()
    with cache.hold(key, wait=wait):
        records = cache.load(key, net, method)
        if records is None:
            records = train().records
            cache.store(key, net, method, records)
    return net, method, History(records), runcache.random_state()
