"""What would the paper profile cost on a GPU? The estimate of :mod:`mixuplib.cost`, per chapter.

Nothing here trains: each chapter's paper-profile runs (methods x seeds x setups, epochs, images)
times the throughput and per-method step ratios measured on one H100 (``results/gpu/``). The
wide ResNets are scaled by forward FLOPs and PGD training counts ``steps + 1`` passes: both are
assumptions, not measurements (see the module's docstring).

Run: python benchmarks/paper_cost.py    (prints the Markdown table that README.md shows)
"""

from __future__ import annotations

from pathlib import Path

from mixuplib import cost

GPU = Path(__file__).resolve().parent.parent / "results" / "gpu"


def table() -> str:
    return cost.markdown_table(cost.measured(GPU))


if __name__ == "__main__":
    print(table(), end="")
