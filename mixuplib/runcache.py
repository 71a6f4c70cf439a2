"""A cache of finished training runs, so that no chapter trains a run another chapter has trained.

Chapter 3 compares manifold mixup with chapter 2's ERM and input mixup on the same data, recipe
and seeds. A run is a pure function of what it starts from, so it is stored once under a key
that hashes all of it, and a second chapter loads it instead of training it again:

- the data: every tensor of the split, its dtype, shape and device;
- the initial weights of the model and the method (they come from the seed) and the method's
  configuration (its ``repr``, its plain attributes, and the source of its class);
- the recipe, the seed and whether the test set was scored every epoch;
- the library's own source and torch's version, and the numerics: the pinned environment,
  the threads, the kernel family and the CPU model. A run under other numerics is another run.

Only CPU runs are cached (a GPU run is neither bit-exact nor cheap to keep); a method whose
class has no retrievable source is never cached. A loaded run restores the model's and the
method's ``state_dict``, the history and the global random state the run ended with, so what a
chapter computes afterwards does not depend on whether the run was trained or loaded. State a
method keeps outside its ``state_dict`` is not restored.

Two chapters running at once are safe: each key has a lock file, a run is written to a
temporary file and renamed, and :meth:`RunCache.hold` can decline a key another process is
training (``wait=False``) so the caller trains something else meanwhile. The folder is named
by ``MIXUPLIB_RUN_CACHE``; unset, nothing is cached.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import numerics

__all__ = ["CACHE_ENV", "RunCache", "Busy", "run_key", "from_environment", "random_state", "set_random_state"]

CACHE_ENV = "MIXUPLIB_RUN_CACHE"


class Busy(Exception):
    """Another process holds this key: it is training the run right now."""


def _tensor_bytes(digest, tensor: torch.Tensor) -> None:
    digest.update(f"{tensor.dtype} {tuple(tensor.shape)} {tensor.device.type}".encode())
    digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def _library_source() -> bytes:
    folder = Path(__file__).parent
    return b"".join(path.read_bytes() for path in sorted(folder.glob("*.py")))


def run_key(split_tensors, model: nn.Module, method: nn.Module, *, seed: int, recipe, test_each_epoch: bool) -> str | None:
    """The key of one run (hex), or ``None`` where the run must not be cached (not on the CPU,
    or a method class whose source cannot be read)."""
    if any(t.device.type != "cpu" for t in split_tensors):
        return None
    digest = hashlib.sha256()
    for tensor in split_tensors:
        _tensor_bytes(digest, tensor)
    for module in (model, method):
        digest.update(repr(module).encode())
        for name, value in module.state_dict().items():
            digest.update(name.encode())
            if isinstance(value, torch.Tensor):
                _tensor_bytes(digest, value)
            else:  # a module's _extra_state (e.g. ICT's and MixMatch's schedules)
                digest.update(repr(value).encode())
    plain = {k: v for k, v in vars(method).items() if not k.startswith("_") and k != "training"}
    digest.update(repr(sorted(plain.items(), key=lambda item: item[0])).encode())
    for cls in type(method).__mro__:
        if cls.__module__.startswith(("torch", "builtins")):
            continue
        try:
            digest.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):
            return None
    digest.update(repr(recipe).encode())
    digest.update(f"seed={seed} test_each_epoch={test_each_epoch} torch={torch.__version__}".encode())
    digest.update(repr(numerics.describe()).encode())
    digest.update(numerics.cpu_name().encode())
    digest.update(_library_source())
    return digest.hexdigest()[:32]


def random_state() -> dict:
    """The global random state of torch (CPU), NumPy and Python, in types ``torch.load`` accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [name, keys.tolist(), pos, has_gauss, cached],
            "python": random.getstate()}


def set_random_state(state: dict) -> None:
    """Restore a :func:`random_state`."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


class RunCache:
    """Finished runs in ``folder``, one file per key."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @contextlib.contextmanager
    def hold(self, key: str, *, wait: bool = True):
        """Hold ``key``'s lock for the block; with ``wait=False`` raise :class:`Busy` at once when
        another process holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{key}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise Busy(key) from None
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self, key: str, model: nn.Module, method: nn.Module) -> list[dict] | None:
        """Restore the run ``key`` into ``model`` and ``method`` and return its history records,
        or ``None`` when it is not stored. The global random state becomes the run's last."""
        path = self.folder / f"{key}.pt"
        if not path.exists():
            return None
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["model"])
        method.load_state_dict(saved["method"])
        for module, training in zip(model.modules(), saved["training"]):
            module.training = training
        set_random_state(saved["random"])
        return saved["history"]

    def store(self, key: str, model: nn.Module, method: nn.Module, records: list[dict]) -> None:
        """Store the finished run ``key``: weights, method state, history, random state."""
        path = self.folder / f"{key}.pt"
        partial = path.with_name(path.name + ".part")
        torch.save({"model": model.state_dict(), "method": method.state_dict(), "history": records,
                    "training": [m.training for m in model.modules()], "random": random_state()}, partial)
        os.replace(partial, path)


def from_environment() -> RunCache | None:
    """The cache named by ``MIXUPLIB_RUN_CACHE``, or ``None`` when it is unset."""
    folder = os.environ.get(CACHE_ENV)
    return RunCache(folder) if folder else None
