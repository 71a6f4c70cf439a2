"""mixuplib: the helper package of the Mixup Book.

Layers, imports pointing down only:

- ``mixing``, ``models``, ``metrics``, ``data``, ``results``: the mixing core, stage-wise
  models, metrics, data sets and the chapters' result files; they import nothing else of ours.
- ``losses``, ``train``, ``plots``: soft targets and mixed losses, the training loop and
  the :class:`~mixuplib.train.Method` interface, the book's figures.
- one file per method: ``vrm`` (Gaussian vicinities), ``input_mixup`` (input mixup, CutMix),
  ``manifold`` (manifold mixup), ``adamixup`` (AdaMixup).
- ``book``: the papermill runner, apart from the rest.
"""

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
    "InputMixup", "CutMix",
]
