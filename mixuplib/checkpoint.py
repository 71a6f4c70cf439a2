"""Checkpoints of a training run: saved after every epoch, so a stopped run resumes where it was.

A checkpoint holds the model, the method (its own parameters and state), the optimiser, the
learning-rate schedule and the history so far: everything :func:`mixuplib.train.fit` needs to
end with the weights an uninterrupted run ends with. It holds the plain model, never a
DistributedDataParallel wrapper, so a single process can load what a rank saved.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["save", "load", "epochs_done"]


def save(path: str | Path, *, model: nn.Module, method: nn.Module, optimizer: torch.optim.Optimizer,
         schedule: torch.optim.lr_scheduler.LRScheduler, records: list[dict]) -> None:
    """Write the state to ``path`` atomically: a run killed while writing keeps the last whole file."""
    path = Path(path)
    state = {"model": model.state_dict(), "method": method.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "history": records}
    partial = path.with_name(path.name + ".part")
    torch.save(state, partial)
    partial.replace(path)


def load(path: str | Path, *, model: nn.Module, method: nn.Module, optimizer: torch.optim.Optimizer,
         schedule: torch.optim.lr_scheduler.LRScheduler) -> list[dict]:
    """Load the state saved at ``path`` into the objects given; returns the history's records."""
    device = next(model.parameters()).device
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    method.load_state_dict(state["method"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    return state["history"]


def epochs_done(path: str | Path) -> int:
    """How many epochs the checkpoint at ``path`` holds (0 if there is none)."""
    path = Path(path)
    return len(torch.load(path, map_location="cpu", weights_only=True)["history"]) if path.exists() else 0
