"""mixuplib: the helper package of the Mixup Book.

Layers, imports pointing down only:

- ``mixing``, ``models``, ``metrics``, ``data``, ``attacks``, ``stats``, ``numerics``: the
  mixing core, stage-wise models, metrics (and their registry), data sets, adversarial attacks,
  paired comparisons over seeds and the pinned CPU numerics; they import nothing else of ours.
- ``batches``, ``label_noise``: mini-batches with the CIFAR augmentation, corrupted labels.
- ``losses``, ``train``, ``plots``, ``results``, ``claims``: soft targets and mixed losses, the
  training loop with the :class:`~mixuplib.train.Method` interface and the
  :class:`~mixuplib.train.Recipe`, the book's figures, the chapters' records and tables, and their
  checked claims (findings asserted, comparisons reported).
- ``chapter``: what every chapter does around its experiments (its data, record, claims and
  paper comparison); ``study``: methods × seeds on one split and recipe, compared by name.
- one file per method: ``vrm`` (Gaussian vicinities), ``input_mixup`` (input mixup, CutMix),
  ``manifold`` (manifold mixup), ``adamixup`` (AdaMixup), ``ssl`` (ICT, MixMatch); beside
  them ``distributed``, the training loop on several GPUs.
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
from .input_mixup import CutMix, InputMixup
from .losses import mixup_cross_entropy, soft_cross_entropy, soft_targets
from .mixing import MixedBatch, cutmix, mixup, sample_lambda
from .models import predict
from .stats import Comparison, paired
from .study import Study, study
from .train import ERM, History, Method, Recipe, TrainConfig, evaluate, fit, seed_everything, train_on

__version__ = "0.1.0"

__all__ = [
    "MixedBatch", "sample_lambda", "mixup", "cutmix",
    "soft_targets", "soft_cross_entropy", "mixup_cross_entropy",
    "seed_everything", "Method", "ERM", "TrainConfig", "Recipe", "History", "fit", "train_on", "predict", "evaluate",
    "InputMixup", "CutMix", "Claims", "ClaimFailed", "Chapter", "Published", "Comparison", "paired",
    "Study", "study",
]
