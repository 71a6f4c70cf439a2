"""The book's records read together: what the summary page ("Which mixup when") shows.

Every chapter ends by writing ``results/<profile>/<chapter>.json`` (:meth:`mixuplib.Chapter.write`):
its findings and reported comparisons, each with its paired interval as numbers. This module
reads those records back, says which are missing or stale, and gathers their comparisons:

    records = read_records("../results/embedded", "../notebooks", ["02_input_mixup", ...])
    rows = comparisons(records)              # every finding and report of the current records
    cell = lookup(records, "02_input_mixup", "mixup α=1 against ERM in test error")

A record is *stale* when the notebook's code is no longer the code that wrote it (the record keeps
:func:`~mixuplib.results.notebook_code_digest`; file times are useless here, since a git checkout
sets them all). Its numbers are then not shown: they may come from a method, a parameter or a
seed list that the chapter no longer has.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .results import notebook_code_digest
from .stats import Comparison

__all__ = ["ChapterRecord", "read_records", "comparisons", "lookup", "verdict_of", "STATUS_WORDS"]

STATUS_WORDS = {
    "current": "current",
    "missing": "missing: the chapter has not written its record",
    "stale": "stale: the chapter's code changed after it wrote its record",
    "unchecked": "not checked: the record does not say which code wrote it",
    "other profile": "from another profile",
}


@dataclass(frozen=True)
class ChapterRecord:
    """One chapter's record as the summary finds it.

    Attributes:
        chapter: the notebook's name, e.g. ``"02_input_mixup"``.
        status: ``"current"``, ``"missing"``, ``"stale"``, ``"unchecked"`` or ``"other profile"``
            (:data:`STATUS_WORDS` says each in words).
        record: the parsed JSON; ``None`` unless its numbers may be shown (current or unchecked).
    """

    chapter: str
    status: str
    record: dict | None

    @property
    def usable(self) -> bool:
        return self.record is not None


def read_records(records_dir: str | Path, notebooks_dir: str | Path, chapters: list[str], *,
                 profile: str | None = None) -> list[ChapterRecord]:
    """Each chapter's record from ``records_dir``, checked against its notebook in ``notebooks_dir``
    (and, given ``profile``, against the profile it should come from)."""
    if not isinstance(chapters, (list, tuple)) or not chapters:
        raise ValueError(f"chapters must be a non-empty list of chapter names, got {chapters!r}")
    found = []
    for chapter in chapters:
        path, notebook = Path(records_dir) / f"{chapter}.json", Path(notebooks_dir) / f"{chapter}.ipynb"
        if not path.is_file():
            found.append(ChapterRecord(chapter, "missing", None))
            continue
        record = json.loads(path.read_text())
        written_by = record.get("notebook_code_sha256")
        if profile is not None and record.get("profile") != profile:
            found.append(ChapterRecord(chapter, "other profile", None))
        elif written_by is None or not notebook.is_file():
            found.append(ChapterRecord(chapter, "unchecked", record))
        elif written_by != notebook_code_digest(notebook):
            found.append(ChapterRecord(chapter, "stale", None))
        else:
            found.append(ChapterRecord(chapter, "current", record))
    return found


def verdict_of(numbers: dict) -> str:
    """The verdict of an interval kept as numbers (:func:`mixuplib.claims.comparison_record`):
    :attr:`mixuplib.stats.Comparison.verdict` of the comparison they describe."""
    return Comparison(numbers["a"], numbers["b"], numbers["difference"], numbers["low"], numbers["high"],
                      tuple(numbers["seeds"]), numbers["n_examples"]).verdict


def comparisons(records: list[ChapterRecord]) -> list[dict]:
    """Every finding and reported comparison with an interval in the usable records, in the
    chapters' order: ``{chapter, kind ("finding" or "report"), statement, verdict, holds, **numbers}``.
    Intervals of one seed (infinite) are left out: they resolve nothing."""
    rows = []
    for item in records:
        if not item.usable:
            continue
        entries = [("finding", c) for c in item.record.get("claims", [])] + \
                  [("report", c) for c in item.record.get("comparisons", [])]
        for kind, entry in entries:
            numbers = entry.get("comparison")
            if not numbers or not (math.isfinite(numbers["low"]) and math.isfinite(numbers["high"])):
                continue
            rows.append({"chapter": item.chapter, "kind": kind, "statement": entry["statement"],
                         "verdict": verdict_of(numbers), "holds": entry.get("holds", True), **numbers})
    return rows


def lookup(records: list[ChapterRecord], chapter: str, statement: str) -> dict | None:
    """The comparison ``statement`` of ``chapter`` (a row of :func:`comparisons`), or ``None``
    where its record is missing or stale or no longer holds that statement."""
    return next((row for row in comparisons([r for r in records if r.chapter == chapter])
                 if row["statement"] == statement), None)
