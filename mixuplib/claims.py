"""Claims as checks: every outcome a chapter states is computed from the chapter's own numbers.

A chapter creates one :class:`Claims` and states each outcome through it, right where the
numbers behind it are computed::

    claims = Claims(enforce=profile != "smoke")
    claims.below("mixup lowers the test NLL", mixup_nll, erm_nll, margin=0.02, precision=3)
    ...
    claims.show()  # the chapter's last cell: "What this run shows"

A claim that does not hold raises :class:`ClaimFailed` naming it, so papermill, the batch
runner and nbval fail loudly. Under a profile whose numbers mean nothing (the smoke profile
trains on random noise) the chapter passes ``enforce=False``: claims are still computed and
listed, marked as not enforced, and nothing stops.

Sequences of per-seed values are compared by their means; the evidence prints mean, sample
standard deviation (ddof = 1) and n, so a reader can judge the margin against the spread.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence, Union

__all__ = ["Claim", "Claims", "ClaimFailed", "seed_margin", "two_standard_errors"]

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

    def check(self, statement: str, holds: bool, evidence: str) -> Claim:
        """Record ``statement`` with the verdict ``holds`` and the ``evidence`` behind it.

        Raises:
            ClaimFailed: when ``holds`` is false and the claims are enforced.
        """
        if not statement or not isinstance(statement, str):
            raise ValueError(f"statement must be a non-empty string, got {statement!r}")
        if any(c.statement == statement for c in self.items):
            raise ValueError(f"claim {statement!r} was already checked in this run")
        claim = Claim(statement, bool(holds), evidence)
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

    def show(self) -> None:
        """Print the claims, one line each: the list a chapter ends with, "What this run shows"."""
        print(f"What this run shows ({len(self.items)} claims, each computed from this run's numbers):")
        for claim in self.items:
            mark = "holds" if claim.holds else ("FAILS" if self.enforce else "does not hold (not enforced)")
            print(f"- [{mark}] {claim.statement}  ({claim.evidence})")

    def to_list(self) -> list[dict]:
        """The claims as plain dicts, for a chapter's results JSON."""
        return [asdict(c) for c in self.items]


def seed_margin(*groups: Sequence[Number], floor: float = 0.0) -> float:
    """A claim's margin: the largest sample std (ddof = 1) of the per-seed ``groups``, at least ``floor``.

    A difference beyond it counts as a finding; one within it is a tie up to the seed spread.
    A group of one run has no spread and adds nothing.
    """
    import numpy as np

    _check_margin(floor, "floor")
    return max([float(floor)] + [float(np.std(g, ddof=1)) for g in groups if len(g) > 1])


def two_standard_errors(a: Sequence[Number], b: Sequence[Number], *, floor: float = 0.0) -> float:
    """A tie's tolerance: twice the standard error of the difference of the means of the
    per-seed values ``a`` and ``b`` (sample variances, ddof = 1), at least ``floor``.

    With fewer than two runs in either group there is no standard error, and ``floor`` is returned.
    """
    import numpy as np

    _check_margin(floor, "floor")
    if len(a) < 2 or len(b) < 2:
        return float(floor)
    return max(float(floor), 2 * float(np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))))


def _check_margin(margin, name: str = "margin") -> None:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin) or margin < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {margin!r}")
