"""The book's figures: one helper per kind of figure, shared by every chapter.

Figures have an opaque white background (readable in the book's dark mode) and axis labels
with units. Each helper draws into an ``Axes`` it is given or creates, and returns it.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

from .metrics import ReliabilityBins
from .models import predict

__all__ = ["use_book_style", "flow_diagram", "beta_densities", "lambda_histograms", "probability_field", "vicinity_samples",
           "curves", "seed_points", "sweep", "reliability_diagram", "image_grid", "forest"]


def use_book_style() -> None:
    """Matplotlib settings for every figure of the book."""
    matplotlib.rcParams.update({
        "figure.facecolor": "white", "savefig.facecolor": "white", "axes.facecolor": "white",
        "figure.dpi": 100, "savefig.dpi": 150, "font.size": 10, "axes.titlesize": 10,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
        "figure.constrained_layout.use": True,
    })


def _axes(ax: Axes | None, size=(4, 3)) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=size)[1]


def beta_densities(alphas: Sequence[float], ax: Axes | None = None) -> Axes:
    """Density of Beta(alpha, alpha) on (0, 1) for each alpha."""
    from scipy.stats import beta

    ax = _axes(ax)
    grid = np.linspace(0.001, 0.999, 500)
    for a in alphas:
        ax.plot(grid, beta.pdf(grid, a, a), label=f"α = {a:g}")
    ax.set(xlabel="λ", ylabel="density", ylim=(0, 4), title="Beta(α, α)")
    ax.legend(fontsize=8)
    return ax


def lambda_histograms(samples: Mapping[float, torch.Tensor], axes: Sequence[Axes] | None = None) -> Sequence[Axes]:
    """One histogram of drawn lambdas per alpha (``samples[alpha]`` is a 1-D tensor)."""
    if axes is None:
        _, axes = plt.subplots(1, len(samples), figsize=(2.2 * len(samples), 2.2), sharey=True)
    for ax, (a, lam) in zip(axes, samples.items()):
        ax.hist(lam.numpy(), bins=20, range=(0, 1), color="tab:blue", density=True)
        ax.set(title=f"α = {a:g}", xlabel="λ")
    axes[0].set_ylabel("density")
    return axes


def probability_field(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ax: Axes | None = None, *,
                      title: str = "", resolution: int = 200, margin: float = 0.5):
    """Predicted probability of class 1 over the plane, the 0.5 contour, and the points ``(x, y)``.

    Args:
        model: a classifier of 2-D inputs (two classes).
        x: ``(N, 2)`` points to overlay; y: ``(N,)`` their labels.

    Returns:
        ``(ax, contours)``; pass ``contours`` to ``fig.colorbar``.
    """
    ax = _axes(ax, (3.6, 3.2))
    lo, hi = x.min(0).values - margin, x.max(0).values + margin
    gx, gy = torch.meshgrid(torch.linspace(lo[0], hi[0], resolution), torch.linspace(lo[1], hi[1], resolution), indexing="xy")
    grid = torch.stack([gx.flatten(), gy.flatten()], 1).to(next(model.parameters()).device)
    p = torch.softmax(predict(model, grid), dim=1)[:, 1].view(resolution, resolution).cpu()
    image = ax.contourf(gx, gy, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.8)
    ax.contour(gx, gy, p, levels=[0.5], colors="k", linewidths=1)
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", edgecolors="k", s=12, linewidths=0.5)
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    ax.grid(False)
    return ax, image


def vicinity_samples(x: torch.Tensor, y: torch.Tensor, samples: torch.Tensor, sample_labels: torch.Tensor,
                     ax: Axes | None = None, *, title: str = "") -> Axes:
    """Training points (large, outlined) and points drawn from their vicinities (small)."""
    ax = _axes(ax, (3.6, 3.2))
    ax.scatter(samples[:, 0], samples[:, 1], c=sample_labels, cmap="RdBu_r", vmin=0, vmax=1, s=3, alpha=0.35)
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", vmin=0, vmax=1, edgecolors="k", s=18, linewidths=0.6)
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$")
    return ax


def curves(histories: Mapping[str, object], metric: str, ax: Axes | None = None, *, ylabel: str | None = None) -> Axes:
    """``metric`` per epoch for each run of :class:`~mixuplib.history.History`; a list of
    histories (one per seed) draws the mean and a min-max band."""
    ax = _axes(ax)
    for label, runs in histories.items():
        runs = [runs] if hasattr(runs, "column") else list(runs)
        values = np.array([r.column(metric) for r in runs])
        epochs = np.arange(1, values.shape[1] + 1)
        line, = ax.plot(epochs, values.mean(0), label=label)
        if len(runs) > 1:
            ax.fill_between(epochs, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
    ax.set(xlabel="epoch", ylabel=ylabel or metric)
    ax.legend(fontsize=8)
    return ax


def seed_points(values: Mapping[str, Sequence[float]], ax: Axes | None = None, *, ylabel: str | None = None) -> Axes:
    """One column per method: each seed's value as a dot and the mean as a bar, so a reader
    sees the spread a table's mean ± std summarises (n = 3 dots say more than a std)."""
    ax = _axes(ax)
    for i, (label, runs) in enumerate(values.items()):
        runs = np.asarray(list(runs), dtype=float)
        ax.bar(i, runs.mean(), width=0.6, alpha=0.35)
        ax.plot(np.full(len(runs), i), runs, "o", color="black", markersize=4)
    ax.set_xticks(range(len(values)), list(values), rotation=20, ha="right", fontsize=8)
    ax.set(ylabel=ylabel)
    ax.grid(axis="x", visible=False)
    return ax


def sweep(values: Mapping[str, Mapping[float, Sequence[float]]], ax: Axes | None = None, *, xlabel: str,
          ylabel: str | None = None, log_x: bool = False) -> Axes:
    """A metric against a setting (the number of labels, a budget): ``values[method][x]`` holds
    one value per seed. Each method is a line through its means, each seed a dot beside it."""
    ax = _axes(ax)
    for label, by_x in values.items():
        xs = sorted(by_x)
        line, = ax.plot(xs, [np.mean(by_x[x]) for x in xs], "o-", markersize=3, label=label)
        for x in xs:
            ax.plot(np.full(len(by_x[x]), x), by_x[x], ".", color=line.get_color(), alpha=0.5)
    if log_x:
        ax.set_xscale("log")
        ticks = sorted({x for by_x in values.values() for x in by_x})
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
        ax.minorticks_off()
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=8)
    return ax


def reliability_diagram(bins: Mapping[str, ReliabilityBins], ax: Axes | None = None) -> Axes:
    """Accuracy against confidence per bin for each model; the diagonal is perfect calibration."""
    ax = _axes(ax, (3.4, 3.4))
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="calibrated")
    for label, b in bins.items():
        keep = b.count > 0
        ax.plot(b.confidence[keep], b.accuracy[keep], "o-", markersize=3, label=f"{label} (ECE {100 * b.ece:.1f} %)")
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    return ax


def image_grid(images: torch.Tensor, titles: Sequence[str] | None = None, *, columns: int = 8, cmap: str = "gray",
               size: float = 1.3):
    """Show images ``(N, C, H, W)`` (C = 1 or 3, any range: each is rescaled to [0, 1]) in a grid."""
    n = images.shape[0]
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows + 0.2 * (titles is not None)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i].detach().float().cpu()
        img = (img - img.min()) / (img.max() - img.min()).clamp_min(1e-8)
        ax.imshow(img[0] if img.shape[0] == 1 else img.permute(1, 2, 0), cmap=cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    return fig


def flow_diagram(boxes: Mapping[str, tuple[float, float, str]], arrows: Sequence[tuple[str, str, str]],
                 ax: Axes | None = None, *, colors: Mapping[str, str] | None = None) -> Axes:
    """A method drawn as boxes and arrows: what feeds what.

    Args:
        boxes: ``{key: (x, y, text)}``, box centres in axes coordinates ([0, 1] each way).
        arrows: ``(from_key, to_key, label)``; an empty label draws a bare arrow.
        ax: where to draw; a new one if None.
        colors: ``{key: face colour}`` for boxes that should stand out (default: light grey).
    """
    unknown = sorted({k for a, b, _ in arrows for k in (a, b)} - set(boxes))
    if unknown:
        raise ValueError(f"arrows name boxes that do not exist: {unknown}; boxes: {sorted(boxes)}")
    ax = _axes(ax, (8, 3.5))
    colors = colors or {}
    drawn = {key: ax.text(x, y, text, ha="center", va="center", fontsize=8, transform=ax.transAxes, zorder=3,
                          bbox={"boxstyle": "round,pad=0.4", "facecolor": colors.get(key, "#eeeeee"), "edgecolor": "#555555"})
             for key, (x, y, text) in boxes.items()}
    for start, end, label in arrows:
        (x0, y0, _), (x1, y1, _) = boxes[start], boxes[end]
        # Clipped at the two boxes' outlines, so that every arrow head shows.
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), xycoords="axes fraction", textcoords="axes fraction", zorder=2,
                    arrowprops={"arrowstyle": "-|>", "color": "#333333", "shrinkA": 3, "shrinkB": 3, "linewidth": 1,
                                "patchA": drawn[start].get_bbox_patch(), "patchB": drawn[end].get_bbox_patch()})
        if label:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.035, label, ha="center", va="bottom", fontsize=7, color="#333333",
                    transform=ax.transAxes, zorder=4)
    ax.set_axis_off()
    return ax


def forest(rows: Sequence[Mapping], ax: Axes | None = None, *, xlabel: str = "paired difference a - b",
           label_width: int = 70) -> Axes:
    """A forest plot: one row per comparison, its mean paired difference ``a - b`` as a dot and
    its 95 % interval as a line, zero marked. ``rows`` hold ``label``, ``difference``, ``low``,
    ``high`` and ``finding`` (a finding is drawn filled, a reported comparison hollow); an
    interval that leaves out zero is drawn dark, one that covers it grey. Top to bottom in order."""
    ax = _axes(ax, (6, 0.16 * len(rows) + 0.6))
    for i, row in enumerate(rows):
        resolved = row["high"] < 0 or row["low"] > 0
        colour = "C0" if resolved else "0.6"
        ax.plot([row["low"], row["high"]], [i, i], color=colour, linewidth=1.2)
        ax.plot(row["difference"], i, "o", markersize=3.5, color=colour,
                markerfacecolor=colour if row["finding"] else "white")
    ax.axvline(0, color="k", linewidth=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_shorten(row["label"], label_width) for row in rows], fontsize=6)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return ax


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
