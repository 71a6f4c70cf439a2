"""What every chapter does around its experiments, written once.

A chapter opens with one :class:`Chapter`, which names it, holds where it runs (profile,
seeds, device, data and results folders), sets the book's figure style and collects its
:class:`~mixuplib.claims.Claims`. It loads its data with :meth:`Chapter.load`, puts published
numbers beside its own with one call of :meth:`Chapter.paper_table`, and ends with
:meth:`Chapter.write`, which records its numbers, its claims and its paper comparison in one
JSON schema for every chapter::

    book = mx.Chapter("02_input_mixup", profile=profile, seeds=seeds, device=device,
                      data_root=data_root, results_dir=results_dir)
    split = book.load(setup)
    ...
    book.paper_table(PUBLISHED, ours={"ERM": errors_erm, "mixup": errors_mixup}, caption=...)
    book.write({"test_error": ...})
    book.claims.show()
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from . import data, numerics
from .claims import CHECK_ENV, Claims
from .results import Table, html_table, mean_std, notebook_code_digest, write_results
from .progress import in_colab

__all__ = ["Chapter", "Published", "paper_record_path", "book_checks_its_run"]

_NAME = re.compile(r"\d\d_[a-z0-9_]+")


def paper_record_path(results_dir: str | Path, chapter: str) -> Path:
    """Where the paper profile writes ``chapter``'s record: ``results/paper/<chapter>.json``
    beside the folder ``results_dir`` of the profile that asks."""
    return Path(results_dir).parent / "paper" / f"{chapter}.json"


def book_checks_its_run() -> bool:
    """Whether this process is the book checking its own run: the runner or the test suite set
    :data:`~mixuplib.claims.CHECK_ENV` (the profile's own parameters) and the numerics are pinned.
    A reader's run (Colab, Jupyter, a changed parameter, the CPU's own kernels) is not."""
    return os.environ.get(CHECK_ENV) == "1" and numerics.is_pinned()


@dataclass(frozen=True)
class Published:
    """One published number, where it was printed, and which of our numbers matches it.

    Attributes:
        setting: what it was measured on: data, network and, where it matters, the budget.
        method: the method, as the paper names it.
        value: the number as the paper prints it, e.g. ``"4.2"`` or ``"4.83 ± 0.066"``.
        source: the paper and the table or figure it is in.
        ours: the key of the matching per-seed numbers this chapter records under the paper
            profile; ``None`` where the book runs nothing comparable.
    """

    setting: str
    method: str
    value: str
    source: str
    ours: str | None = None


class Chapter:
    """One run of a chapter.

    Args:
        name: the chapter's notebook name, e.g. ``"02_input_mixup"``; its record is
            ``<results_dir>/<name>.json``.
        profile: ``"embedded"``, ``"paper"`` or ``"smoke"``; claims are enforced under the
            embedded profile when the book checks its own run (:func:`book_checks_its_run`),
            and only listed everywhere else, so a reader's run always finishes.
        seeds, device, data_root, results_dir: the chapter's parameters of those names.
        download: let torchvision fetch data sets; ``None`` (default) does so in Colab and
            under the paper profile (CIFAR), the two places with internet and no local copy.
    """

    def __init__(self, name: str, *, profile: str, seeds: list[int], device: str, data_root: str | Path,
                 results_dir: str | Path, download: bool | None = None):
        if not _NAME.fullmatch(name):
            raise ValueError(f"name must be a chapter's notebook name such as '02_input_mixup', got {name!r}")
        if not seeds:
            raise ValueError(f"seeds must list at least one seed, got {seeds!r}")
        self.name, self.profile, self.seeds, self.device = name, profile, list(seeds), device
        self.data_root, self.results_dir = data_root, results_dir
        self.download = (in_colab() or profile == "paper") if download is None else bool(download)
        self.claims = Claims(enforce=profile == "embedded" and book_checks_its_run())
        self._datasets: dict[str, data.Split] = {}
        self._paper: dict[str, list[float]] = {}
        from . import plots  # here, not at the top: `import mixuplib` need not load matplotlib

        plots.use_book_style()

    def dataset(self, name: str) -> data.Split:
        """The whole data set ``name`` (:func:`~mixuplib.data.load`), on the CPU, loaded once."""
        if name not in self._datasets:
            self._datasets[name] = data.load(name, self.data_root, download=self.download)
        return self._datasets[name]

    def load(self, setup: dict) -> data.Split:
        """The split a ``setup`` names: ``setup["data"]``, cut to ``train_size`` and
        ``test_size`` examples (class-balanced, drawn with seed 0; absent or None keeps all),
        on the chapter's device."""
        subset = self.dataset(setup["data"]).subset(setup.get("train_size"), setup.get("test_size"),
                                                    generator=torch.Generator().manual_seed(0))
        return subset.to(self.device)

    def validation(self, setup: dict, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` class-balanced examples ``(x, y)`` of ``setup["data"]``'s training images that
        :meth:`load` left out of the setup's training set (drawn with seed 1), on the device: a
        validation set for choosing an epoch without looking at the test set."""
        full = self.dataset(setup["data"])
        used, _ = full.subset_indices(setup.get("train_size"), setup.get("test_size"), generator=torch.Generator().manual_seed(0))
        x, y = full.held_out(used, size, generator=torch.Generator().manual_seed(1))
        return x.to(self.device), y.to(self.device)

    def paper_table(self, published: list[Published], ours: dict[str, list[float]] | None = None, *, caption: str,
                    label: str | None = None, precision: int = 2) -> Table:
        """Published numbers beside this chapter's paper-profile numbers, one row each.

        Under the paper profile ``ours`` are the numbers just computed (per-seed lists keyed
        as :attr:`Published.ours` names them) and are also recorded by :meth:`write`. Under
        any other profile the paper profile's record of this chapter is read, if there is one
        (:func:`paper_record_path`); without one the column says "not run".
        """
        if self.profile == "paper":
            if ours is None:
                raise ValueError("ours is required under the paper profile: the numbers this run made, keyed as "
                                 "Published.ours names them")
            found = ours
        else:
            path = paper_record_path(self.results_dir, self.name)
            found = json.loads(path.read_text()).get("paper_comparison", {}) if path.exists() else {}
        self._paper = dict(ours or {})
        rows = []
        for item in published:
            values = found.get(item.ours) if item.ours else None
            cell = mean_std(values, precision) if values else ("not run" if item.ours else "—")
            rows.append({"setting": item.setting, "method": item.method, "published": item.value, "source": item.source,
                         "ours, paper profile": cell, "runs": len(values) if values else 0})
        return html_table(rows, ["setting", "method", "published", "source", "ours, paper profile", "runs"],
                          caption=caption, label=label)

    def write(self, numbers: dict) -> None:
        """Record ``numbers``, the claims and the paper comparison of this run as
        ``<results_dir>/<name>.json`` (see :func:`~mixuplib.results.write_results`), and print where."""
        notebook = Path(f"{self.name}.ipynb")  # a chapter runs in its own folder; not there in Colab
        path = write_results(self.name, numbers, profile=self.profile, seeds=self.seeds, device=self.device,
                             results_dir=self.results_dir, claims=self.claims.to_list(), paper_comparison=self._paper,
                             comparisons=self.claims.reported_list(),
                             notebook_code=notebook_code_digest(notebook) if notebook.is_file() else None)
        print(f"wrote {path.name} for profile {self.profile!r}, {len(self.seeds)} seeds, {len(self.claims.items)} claims")
