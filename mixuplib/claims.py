"""Claims as checks: every outcome a chapter states is computed from the chapter's own numbers.

A chapter creates one :class:`Claims` and states each outcome through it, right where the
numbers behind it are computed::

    claims = Claims(enforce=True)
    versus = stats.paired(errors_mixup, errors_erm, seeds=seeds, names=("mixup", "ERM"))
    claims.finding("mixup lowers the test error below ERM's", versus, lower="mixup")
    claims.finding("label smoothing and ERM end within ±0.5 points", ls_vs_erm, within=0.5)
    claims.report("mixup α=1 against ERM in test NLL", other)   # a verdict shown, never asserted
    ...
    claims.show()  # the chapter's last cell: "What this run shows"

Two kinds of statement:

- a **finding** the prose asserts (:meth:`Claims.finding`, and the direct checks
  :meth:`~Claims.check`, :meth:`~Claims.below`, :meth:`~Claims.above`, :meth:`~Claims.within`
  of a single number against a bound): when it does not hold and the claims are enforced, it
  raises :class:`ClaimFailed` naming it, so papermill, the batch runner and nbval fail loudly;
- a **comparison** the page only reports (:meth:`Claims.report`): its verdict, "A lower",
  "B lower" or "not resolved at n", is listed and never asserted.

Claims are enforced only where the book checks its own run: the embedded profile with its own
parameters under the pinned numerics, as the runner and nbval execute it (they set
:data:`CHECK_ENV`). Anywhere else (Colab, Jupyter, a changed parameter, other kernels, the
smoke profile) a chapter passes ``enforce=False`` and always finishes; :meth:`Claims.show` marks
each finding that does not hold and says at its top how many and why that can happen.

A finding between two methods rests on a :class:`~mixuplib.stats.Comparison`, a paired 95 %
interval over seeds (and test images); a tie is only an equivalence within ``±delta``, with
``delta`` fixed before the run. The direct checks compare one number (or the mean of per-seed
values) with a bound whose source the chapter states; their evidence prints mean, sample
standard deviation (ddof = 1) and n.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence, Union

from .stats import Comparison

__all__ = ["Claim", "Claims", "ClaimFailed", "Reported", "CHECK_ENV", "comparison_record"]

# Set to "1" by the batch runner (the profile's own parameters) and by the test suite: the run is
# the book's own, whose findings must hold. Any other value, or none, lets a chapter finish.
CHECK_ENV = "MIXUPLIB_CHECK_CLAIMS"

Number = Union[float, int]
Values = Union[Number, Sequence[Number]]


class ClaimFailed(AssertionError):
    """A chapter's stated outcome does not hold in this run; the message names the claim."""


@dataclass(frozen=True)
class Claim:
    """One checked statement: what the prose says, whether this run bears it out, and why."""

    statement: str
    holds: bool
    evidence: str
    comparison: dict | None = None  # a finding's interval as numbers (:func:`comparison_record`)


def comparison_record(comparison: Comparison, precision: int = 2, unit: str = "") -> dict:
    """``comparison`` as the numbers a results JSON keeps, so a page that reads it (the book's
    summary) can draw the interval: both names, the mean paired difference ``a - b``, its 95 %
    interval, the seeds, the test images each run was scored on, and how the chapter printed it."""
    return {"a": comparison.a, "b": comparison.b, "difference": comparison.difference, "low": comparison.low,
            "high": comparison.high, "seeds": list(comparison.seeds), "n_examples": comparison.n_examples,
            "unit": unit, "precision": precision}


def _summary(values: Values, precision: int) -> tuple[float, str]:
    """The number a claim compares (the mean of a sequence) and how to print it."""
    if isinstance(values, (int, float)):
        return float(values), f"{values:.{precision}f}"
    values = [float(v) for v in values]
    if not values:
        raise ValueError("a claim needs at least one value, got an empty sequence")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, f"{mean:.{precision}f} (n = 1)"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, f"{mean:.{precision}f} ± {std:.{precision}f} (n = {len(values)})"


@dataclass(frozen=True)
class Reported:
    """A comparison the page reports and never asserts: its statement, verdict and evidence."""

    statement: str
    verdict: str
    evidence: str
    comparison: dict | None = None  # its interval as numbers (:func:`comparison_record`)


class Claims:
    """The outcomes a chapter states, each checked against the run's numbers.

    Args:
        enforce: raise :class:`ClaimFailed` as soon as a claim does not hold. ``False`` for
            profiles whose numbers mean nothing (the smoke profile); the claims are then only
            listed.
    """

    def __init__(self, enforce: bool = True):
        self.enforce = bool(enforce)
        self.items: list[Claim] = []
        self.reported: list[Reported] = []

    def check(self, statement: str, holds: bool, evidence: str, *, comparison: dict | None = None) -> Claim:
        """Record ``statement`` with the verdict ``holds`` and the ``evidence`` behind it
        (and, for a finding, its interval as numbers, ``comparison``).

        Raises:
            ClaimFailed: when ``holds`` is false and the claims are enforced.
        """
        if not statement or not isinstance(statement, str):
            raise ValueError(f"statement must be a non-empty string, got {statement!r}")
        if any(c.statement == statement for c in self.items):
            raise ValueError(f"claim {statement!r} was already checked in this run")
        claim = Claim(statement, bool(holds), evidence, comparison)
        self.items.append(claim)
        if not claim.holds and self.enforce:
            raise ClaimFailed(f"claim failed: {statement!r}: {evidence}")
        return claim

    def below(self, statement: str, value: Values, bound: Values, *, margin: float = 0.0, precision: int = 2,
              unit: str = "") -> Claim:
        """Claim that ``value`` lies below ``bound`` by at least ``margin``: ``value <= bound - margin``.

        ``value`` and ``bound`` are numbers or per-seed sequences (compared by their means).
        """
        a, a_text = _summary(value, precision)
        b, b_text = _summary(bound, precision)
        _check_margin(margin)
        slack = f" - {margin:.{precision}f}" if margin else ""
        return self.check(statement, a <= b - margin, f"{a_text}{unit} vs {b_text}{unit}{slack}")

    def above(self, statement: str, value: Values, bound: Values, *, margin: float = 0.0, precision: int = 2,
              unit: str = "") -> Claim:
        """Claim that ``value`` lies above ``bound`` by at least ``margin``: ``value >= bound + margin``."""
        a, a_text = _summary(value, precision)
        b, b_text = _summary(bound, precision)
        _check_margin(margin)
        slack = f" + {margin:.{precision}f}" if margin else ""
        return self.check(statement, a >= b + margin, f"{a_text}{unit} vs {b_text}{unit}{slack}")

    def within(self, statement: str, value: Values, target: Values, *, tolerance: float, precision: int = 2,
               unit: str = "") -> Claim:
        """Claim that ``value`` and ``target`` differ by at most ``tolerance`` (a tie, up to noise)."""
        a, a_text = _summary(value, precision)
        b, b_text = _summary(target, precision)
        _check_margin(tolerance, "tolerance")
        return self.check(statement, abs(a - b) <= tolerance,
                          f"|{a_text}{unit} - {b_text}{unit}| <= {tolerance:.{precision}f}")

    def finding(self, statement: str, comparison: Comparison, *, lower: str | None = None,
                within: float | None = None, precision: int = 2, unit: str = "") -> Claim:
        """Assert what ``comparison`` (a paired interval, :func:`mixuplib.stats.paired`) shows.

        Give exactly one of:
            lower: the name (``comparison.a`` or ``.b``) the interval must show lower.
            within: ``delta``, fixed before the run; the whole interval must lie inside ``±delta``.
        """
        if not isinstance(comparison, Comparison):
            raise TypeError(f"comparison must be a mixuplib.stats.Comparison, got {type(comparison).__name__}")
        if (lower is None) == (within is None):
            raise ValueError(f"give exactly one of lower= (a name) or within= (a delta), got lower={lower!r}, "
                             f"within={within!r}")
        evidence, numbers = comparison.describe(precision, unit), comparison_record(comparison, precision, unit)
        if lower is not None:
            return self.check(statement, comparison.lower(lower), evidence, comparison=numbers)
        holds = comparison.within(within)
        return self.check(statement, holds, f"{evidence}; equivalence needs the interval inside "
                                            f"±{within:.{precision}f}{unit}", comparison={**numbers, "within": within})

    def report(self, statement: str, comparison: Comparison, *, precision: int = 2, unit: str = "") -> Reported:
        """Record ``comparison``'s verdict under ``statement``, to show and never to assert."""
        if not isinstance(comparison, Comparison):
            raise TypeError(f"comparison must be a mixuplib.stats.Comparison, got {type(comparison).__name__}")
        if not statement or not isinstance(statement, str):
            raise ValueError(f"statement must be a non-empty string, got {statement!r}")
        if any(r.statement == statement for r in self.reported):
            raise ValueError(f"comparison {statement!r} was already reported in this run")
        item = Reported(statement, comparison.verdict, comparison.describe(precision, unit),
                        comparison_record(comparison, precision, unit))
        self.reported.append(item)
        return item

    def show(self) -> None:
        """Print the claims, one line each: the list a chapter ends with, "What this run shows".

        In a run that does not enforce them, a first line says how many findings do not hold
        and why that can happen; reported comparisons follow the findings with their verdicts.
        """
        print(f"What this run shows ({len(self.items)} claims, each computed from this run's numbers):")
        failing = sum(not c.holds for c in self.items)
        if failing and not self.enforce:
            print(f"{failing} of {len(self.items)} findings do not hold in this run. This is not the book's own run "
                  f"(other seeds or parameters, other kernels or threads, or a profile whose numbers mean nothing): "
                  f"a finding can fail here by chance, or because it depends on what changed.")
        for claim in self.items:
            mark = "holds" if claim.holds else ("FAILS" if self.enforce else "does not hold (not enforced)")
            print(f"- [{mark}] {claim.statement}  ({claim.evidence})")
        if self.reported:
            print(f"Reported, not asserted ({len(self.reported)} comparisons):")
            for item in self.reported:
                print(f"- [{item.verdict}] {item.statement}  ({item.evidence})")

    def to_list(self) -> list[dict]:
        """The findings as plain dicts, for a chapter's results JSON."""
        return [_plain(c) for c in self.items]

    def reported_list(self) -> list[dict]:
        """The reported comparisons as plain dicts, for a chapter's results JSON."""
        return [_plain(r) for r in self.reported]


def _plain(item: Claim | Reported) -> dict:
    """``item`` as a dict for the results JSON; a check of one number has no interval to keep."""
    return {key: value for key, value in asdict(item).items() if key != "comparison" or value is not None}


def _check_margin(margin, name: str = "margin") -> None:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin) or margin < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {margin!r}")
