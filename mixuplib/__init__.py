"""mixuplib: the helper package of the Mixup Book.

Layers, imports pointing down only:

- ``mixing``, ``models``, ``metrics``, ``data``, ``attacks``, ``claims``, ``numerics``: the
  mixing core, stage-wise models, metrics, data sets, adversarial attacks, the chapters'
  checked claims and the pinned CPU numerics; they import nothing else of ours (``results``
  only ``numerics``).
- ``losses``, ``train``, ``plots``: soft targets and mixed losses, the training loop and
  the :class:`~mixuplib.train.Method` interface, the book's figures.
- one file per method: ``vrm`` (Gaussian vicinities), ``input_mixup`` (input mixup, CutMix),
  ``manifold`` (manifold mixup), ``adamixup`` (AdaMixup), ``ssl`` (ICT, MixMatch).
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

from .claims import ClaimFailed, Claims, seed_margin
from .input_mixup import CutMix, InputMixup
from .losses import mixup_cross_entropy, soft_cross_entropy, soft_targets
from .mixing import MixedBatch, cutmix, mixup, sample_lambda
from .models import predict
from .train import ERM, History, Method, TrainConfig, evaluate, fit, seed_everything, train_on

__version__ = "0.1.0"

__all__ = [
    "MixedBatch", "sample_lambda", "mixup", "cutmix",
    "soft_targets", "soft_cross_entropy", "mixup_cross_entropy",
    "seed_everything", "Method", "ERM", "TrainConfig", "History", "fit", "train_on", "predict", "evaluate",
    "InputMixup", "CutMix", "Claims", "ClaimFailed", "seed_margin",
]
