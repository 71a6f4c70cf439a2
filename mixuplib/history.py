"""The per-epoch record of a training run."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """One record per epoch: ``epoch``, ``lr``, ``train_loss``, ``test_error`` (%),
    ``test_nll``, ``test_ece`` (%), ``seconds``, ``examples_per_s`` and whatever the method
    and callbacks add."""

    records: list[dict[str, float]] = field(default_factory=list)

    def column(self, name: str) -> list[float]:
        return [r[name] for r in self.records]

    @property
    def last(self) -> dict[str, float]:
        return self.records[-1]

    def best(self, name: str = "test_error") -> float:
        return min(self.column(name))
