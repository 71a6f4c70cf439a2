"""A chapter's headline numbers, written as JSON with what is needed to trust them."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

__all__ = ["write_results", "format_table", "mean_std", "glue", "RESULTS_DIR_ENV"]

RESULTS_DIR_ENV = "MIXUPLIB_RESULTS_DIR"  # set by the test suite so that nbval runs write elsewhere


def _environment(device: str) -> dict:
    import matplotlib
    import numpy
    import torchvision

    info = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "matplotlib": matplotlib.__version__, "platform": platform.platform()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    else:
        info["cpu_threads"] = torch.get_num_threads()
    return info


def write_results(chapter: str, numbers: dict, *, profile: str, seeds: list[int], device: str, started: float,
                  results_dir: str | Path) -> Path:
    """Write ``numbers`` for ``chapter`` to ``results_dir/chapter.json`` and return the path.

    The file also records the profile, the seeds, the device, library versions and the wall
    time since ``started`` (a ``time.time()`` value). The environment variable
    ``MIXUPLIB_RESULTS_DIR``, when set, replaces ``results_dir``.
    """
    folder = Path(os.environ.get(RESULTS_DIR_ENV) or results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"chapter": chapter, "profile": profile, "seeds": list(seeds), "n_runs": len(seeds), "device": device,
              "wall_time_s": round(time.time() - started, 1), "environment": _environment(device), "numbers": numbers}
    path = folder / f"{chapter}.json"
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    partial.replace(path)
    return path


def mean_std(values, precision: int = 2) -> str:
    """``"mean ± std"`` of ``values`` (population std, 0 for a single run) at fixed precision."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    return f"{values.mean():.{precision}f} ± {values.std():.{precision}f}"


def format_table(rows: list[dict], columns: list[str], *, precision: int = 2) -> str:
    """A plain-text table of ``rows`` (dicts) with the given ``columns``; floats at fixed precision.

    Fixed precision is what lets nbval compare a re-run with the committed output exactly.
    """
    def cell(v):
        return f"{v:.{precision}f}" if isinstance(v, float) else str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    line = lambda cells: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(b) for b in body])


def glue(name: str, value) -> None:
    """Record ``value`` for the book's prose (``{glue:text}`name```) without printing it.

    Outside the book's tool chain (e.g. in Colab, without myst-nb) there is no prose to fill,
    and this does nothing.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=False)
