"""Where the book runs, and whether a training epoch shows a progress bar there."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

__all__ = ["in_colab", "show_progress", "progress_bar"]

T = TypeVar("T")


def in_colab() -> bool:
    """Whether this runs in Google Colab (where progress bars show and data sets may be downloaded)."""
    return "google.colab" in sys.modules


def show_progress(setting: bool | None) -> bool:
    """A recipe's ``progress`` setting resolved: ``None`` means in Colab, or where the
    environment variable ``MIXUPLIB_PROGRESS`` is ``1``."""
    if setting is not None:
        return setting
    return in_colab() or os.environ.get("MIXUPLIB_PROGRESS") == "1"


def progress_bar(items: Iterable[T], setting: bool | None, desc: str) -> Iterable[T]:
    """``items`` with a tqdm bar that disappears when done, where :func:`show_progress` says so."""
    if not show_progress(setting):
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, leave=False)
