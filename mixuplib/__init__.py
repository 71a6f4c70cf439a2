"""mixuplib: the helper package of the Mixup Book.

Layers, imports pointing down only:

- ``mixing``, ``models``, ``metrics``, ``data``, ``attacks``, ``stats``, ``numerics``, ``seeding``,
  ``method``, ``history``, ``progress``, ``checkpoint``: the mixing core, stage-wise models,
  metrics (and their registry), data sets, adversarial attacks, paired comparisons over seeds,
  the pinned CPU numerics, seeds and the per-epoch generators, the
  :class:`~mixuplib.method.Method` interface with ERM, the per-epoch record, progress bars and
  Colab detection, and checkpoints; they import nothing of ours, or only each other.
- ``batches``, ``label_noise``, ``distributed``: mini-batches with the CIFAR augmentation,
  corrupted labels, and what the loop does inside a process group (shards, DDP).
- ``recipe``, ``losses``: the :class:`~mixuplib.recipe.Recipe` of a run and what a run starts
  from, soft targets and mixed losses.
- ``train``, ``plots``, ``results``, ``claims``: the training loop (:func:`~mixuplib.train.fit`),
  the book's figures, the chapters' records and tables, and their checked claims (findings
  asserted, comparisons reported).
- ``chapter``: what every chapter does around its experiments (its data, record, claims and
  paper comparison); ``study``: methods × seeds on one split and recipe, compared by name.
- one file per method: ``vrm`` (Gaussian vicinities), ``input_mixup`` (input mixup, CutMix, the switch),
  ``manifold`` (manifold mixup), ``adamixup`` (AdaMixup), ``ssl`` (ICT, MixMatch).
- ``profiles``: each profile's papermill parameters (``profiles.yml``); ``cost``: the paper
  profile's GPU-hours, estimated from the GPU records; ``summary``: the chapters' records read back
  for the summary page, missing and stale ones named.
- ``cluster``: chapters and their shards as scheduler jobs (submitit), and the merge of shards;
  ``book``, the papermill runner, on top of it, apart from the rest.
"""

import os as _os

import torch as _torch

if _os.environ.get("MIXUPLIB_PINNED_NUMERICS") == "1":
    # The pinned environment (mixuplib.numerics) fixes intra-op threads through
    # OMP_NUM_THREADS; torch has no variable for its inter-op pool, so it is fixed here.
    try:
        _torch.set_num_interop_threads(1)
    except RuntimeError:  # already fixed, or inter-op work already ran in this process
        pass

from .chapter import Chapter, Published
from .claims import ClaimFailed, Claims
from .input_mixup import CutMix, InputMixup, MixUpCutMix
from .losses import mixup_cross_entropy, soft_cross_entropy, soft_targets
from .mixing import MixedBatch, cutmix, draw_mixing, mix, mixup, sample_lambda
from .models import predict
from .stats import Comparison, paired
from .study import Study, study, train_on
from .history import History
from .method import ERM, Method
from .recipe import Recipe
from .seeding import seed_everything
from .train import evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "MixedBatch", "sample_lambda", "draw_mixing", "mix", "mixup", "cutmix",
    "soft_targets", "soft_cross_entropy", "mixup_cross_entropy",
    "seed_everything", "Method", "ERM", "Recipe", "History", "fit", "train_on", "predict", "evaluate",
    "InputMixup", "CutMix", "MixUpCutMix", "Claims", "ClaimFailed", "Chapter", "Published", "Comparison", "paired",
    "Study", "study",
]
