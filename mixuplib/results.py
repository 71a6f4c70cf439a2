"""A chapter's headline numbers as JSON with what is needed to trust them, and its tables.

A results file holds no wall time and no host name: re-running a chapter on another machine
under the pinned numerics (:mod:`mixuplib.numerics`) rewrites it byte for byte. The batch
runner prints the wall times instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import torch

__all__ = ["write_results", "html_table", "Table", "mean_std", "sample_std", "seed_table", "glue", "RESULTS_DIR_ENV"]

RESULTS_DIR_ENV = "MIXUPLIB_RESULTS_DIR"  # set by the test suite so that nbval runs write elsewhere


def _environment(device: str) -> dict:
    import matplotlib
    import numpy
    import torchvision

    from . import numerics

    # The operating system and architecture, not the kernel release or host: those differ
    # between machines that compute the same bytes.
    info = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "matplotlib": matplotlib.__version__,
            "platform": f"{platform.system()}-{platform.machine()}"}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    else:
        info["cpu_numerics"] = numerics.describe()
    return info


def notebook_code_digest(path: str | Path) -> str:
    """SHA-256 of a notebook's code: the source of every code cell, in order, without the cell
    papermill injects. Outputs, prose and a profile's parameters leave it unchanged, so a record
    written from this code matches it until a code cell is edited (the summary's staleness test)."""
    cells = json.loads(Path(path).read_text())["cells"]
    code = [cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"]) for cell in cells
            if cell["cell_type"] == "code" and "injected-parameters" not in cell.get("metadata", {}).get("tags", [])]
    return hashlib.sha256("\n\x00\n".join(code).encode()).hexdigest()


def write_results(chapter: str, numbers: dict, *, profile: str, seeds: list[int], device: str,
                  results_dir: str | Path, claims: list[dict] | None = None,
                  paper_comparison: dict[str, list[float]] | None = None,
                  comparisons: list[dict] | None = None, notebook_code: str | None = None) -> Path:
    """Write ``numbers`` for ``chapter`` to ``results_dir/chapter.json`` and return the path.

    The file also records the profile, the seeds, the device, library versions, the CPU
    numerics (threads, kernel family, whether they were pinned) and the chapter's checked
    ``claims`` (:meth:`mixuplib.claims.Claims.to_list`) and, under ``paper_comparison``, its
    per-seed numbers for the rows of published tables (keyed as
    :attr:`mixuplib.chapter.Published.ours` names them; the same schema in every chapter).
    ``comparisons`` (:meth:`mixuplib.claims.Claims.reported_list`), the verdicts a chapter
    reports without asserting them, are recorded under that key where there are any.
    ``notebook_code`` (:func:`notebook_code_digest` of the notebook that ran) says which code
    wrote the record, where the notebook file was found. The environment variable
    ``MIXUPLIB_RESULTS_DIR``, when set, replaces ``results_dir``.
    """
    folder = Path(os.environ.get(RESULTS_DIR_ENV) or results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"chapter": chapter, "profile": profile, "seeds": list(seeds), "n_runs": len(seeds), "device": device,
              "environment": _environment(device), "numbers": numbers, "claims": claims or [],
              "paper_comparison": paper_comparison or {}}
    if comparisons:
        record["comparisons"] = comparisons
    if notebook_code:
        record["notebook_code_sha256"] = notebook_code
    path = folder / f"{chapter}.json"
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    partial.replace(path)
    return path


def mean_std(values, precision: int = 2) -> str:
    """``"mean ± std"`` of ``values`` at fixed precision, std the sample standard deviation
    (ddof = 1); a single run prints its value alone, since it has no spread to show.

    Tables print n beside it (a column ``runs``), so a reader can weigh the spread.
    """
    import numpy as np

    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("mean_std needs at least one value, got none")
    if values.size == 1:
        return f"{values[0]:.{precision}f}"
    return f"{values.mean():.{precision}f} ± {values.std(ddof=1):.{precision}f}"


def sample_std(values) -> float:
    """The sample standard deviation (ddof = 1) of ``values``; 0 for a single run, which has no spread."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("sample_std needs at least one value, got none")
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


class Table:
    """A captioned table: a notebook (Jupyter, Colab, the book) renders its HTML, a terminal
    or a log prints its text. Neither form carries random ids or addresses, so a re-executed
    chapter reproduces both byte for byte."""

    def __init__(self, html: str, text: str):
        self.html, self.text = html, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def html_table(rows: list[dict], columns: list[str] | None = None, *, caption: str, label: str | None = None,
               precision: int = 2, escape: bool = True) -> Table:
    """``rows`` (dicts) as a captioned :class:`Table`, floats at fixed precision.

    Make it the last expression of a cell (or ``display(...)`` it) and the page shows a real
    HTML table with its caption. ``label`` becomes the table's HTML id, for links. With
    ``escape=False`` the cells are HTML already (links): the caller escapes their text.
    """
    import html

    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    formatters = {c: (lambda v: f"{v:.{precision}f}") for c in frame.columns if frame[c].dtype.kind == "f"}
    table = frame.to_html(index=False, border=0, classes="table", formatters=formatters, escape=escape, table_id=label)
    caption_tag = f"<caption>{html.escape(caption)}</caption>"
    text = frame.to_string(index=False, formatters=formatters)
    return Table(table.replace(">", ">" + caption_tag, 1), f"{caption}\n{text}")


def seed_table(rows: dict[str, dict[str, list]], *, caption: str, label: str | None = None, first: str = "method",
               precision: int = 2, precisions: dict[str, int] | None = None) -> Table:
    """One row per key of ``rows`` (``{row name: {column: per-seed values}}``): each column as
    mean ± sample std (:func:`mean_std`), then ``runs``, the n of the row's first column.

    ``first`` heads the column of row names; ``precisions`` sets the digits of single columns.
    """
    precisions = precisions or {}
    table = []
    for name, columns in rows.items():
        row = {first: name}
        row.update({c: mean_std(v, precisions.get(c, precision)) for c, v in columns.items()})
        row["runs"] = len(next(iter(columns.values())))
        table.append(row)
    names = list(next(iter(rows.values())))
    return html_table(table, [first, *names, "runs"], caption=caption, label=label)


def glue(name: str, value) -> None:
    """Record ``value`` for the book's prose (``{glue:text}`name```) without printing it; a
    string (e.g. a comparison's verdict) reads in the sentence without quotes.

    Outside the book's tool chain (e.g. in Colab, without myst-nb) there is no prose to fill,
    and this does nothing.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, _Words(value) if isinstance(value, str) else value, display=False)


class _Words(str):
    """Text glued into a sentence as it reads (a verdict, a model's name), without the quotes of its repr."""

    def __repr__(self) -> str:
        return str(self)
