"""The shared figure helpers draw what they say, on an opaque white figure."""

import matplotlib

matplotlib.use("Agg")

from mixuplib import plots  # noqa: E402


def test_seed_points_draws_a_mean_bar_and_every_seed():
    plots.use_book_style()
    values = {"ERM": [13.0, 14.0, 15.0], "mixup": [12.0, 12.5]}
    ax = plots.seed_points(values, ylabel="test error (%)")
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [14.0, 12.25]
    dots = [line.get_ydata().tolist() for line in ax.lines]
    assert dots == [[13.0, 14.0, 15.0], [12.0, 12.5]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ERM", "mixup"] and ax.get_ylabel() == "test error (%)"
    assert ax.figure.get_facecolor()[:3] == (1.0, 1.0, 1.0)


def test_sweep_draws_a_line_through_the_means_and_every_seed():
    values = {"ICT": {250: [10.0, 12.0], 50: [20.0, 22.0, 24.0]}, "mixup": {50: [25.0], 250: [11.0]}}
    ax = plots.sweep(values, xlabel="labels per class", ylabel="test error (%)", log_x=True)
    ict_line, *ict_dots = ax.lines[:3]
    assert ict_line.get_xdata().tolist() == [50, 250] and ict_line.get_ydata().tolist() == [22.0, 11.0]
    assert [d.get_ydata().tolist() for d in ict_dots] == [[20.0, 22.0, 24.0], [10.0, 12.0]]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["50", "250"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ICT", "mixup"]


def test_flow_diagram_draws_every_box_and_arrow_and_rejects_unknown_boxes():
    import pytest

    boxes = {"a": (0.1, 0.5, "input"), "b": (0.9, 0.5, "output")}
    ax = plots.flow_diagram(boxes, [("a", "b", "feeds")])
    texts = [t.get_text() for t in ax.texts]
    assert {"input", "output", "feeds"} <= set(texts) and len(ax.patches) + len(ax.texts) >= 3
    with pytest.raises(ValueError, match=r"arrows name boxes that do not exist: \['c'\]"):
        plots.flow_diagram(boxes, [("a", "c", "")])
