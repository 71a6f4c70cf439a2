"""A Sphinx extension that draws mixuplib's structure for the API page, from the code itself.

At every build it reads which module of ``mixuplib`` imports which (Python's ``ast``, nothing is
imported or run), puts each module on a floor one above the highest module it imports, and
draws the floors as rows of boxes with the imports as arrows, into ``book/_generated/`` (an
ignored folder), where ``book/api.md`` shows it. The runner (``book``, ``cluster``) is drawn apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mixuplib"
OUTPUT = Path(__file__).resolve().parents[1] / "_generated" / "module_map.svg"
RUNNER = ("book", "cluster")  # the batch runner: apart from the layers the chapters import


def imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: the package's modules it imports}``, without ``__init__``."""
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    found = {}
    for name in sorted(modules):
        tree = ast.parse((package / f"{name}.py").read_text())
        used = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:  # from .x import y
                    used.add(node.module.split(".")[0])
                else:  # from . import x, y
                    used.update(alias.name for alias in node.names)
        found[name] = used & modules - {name}
    return found


def floors(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's floor: 1 for a module that imports none of ours, else one above the highest
    it imports. Raises ``ValueError`` on an import cycle (a cycle has no floors)."""
    floor: dict[str, int] = {}

    def place(name: str, path: tuple[str, ...]) -> int:
        if name in path:
            raise ValueError(f"import cycle: {' -> '.join(path + (name,))}")
        if name not in floor:
            floor[name] = 1 + max((place(dep, path + (name,)) for dep in graph[name]), default=0)
        return floor[name]

    for name in graph:
        place(name, ())
    return floor


def draw(output: Path = OUTPUT, package: Path = PACKAGE) -> Path:
    """Draw the map to ``output`` (SVG, text kept as text); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graph = imports(package)
    floor = floors(graph)
    rows: dict[int, list[str]] = {}
    for name in sorted(graph, key=lambda n: (floor[n], n)):
        if name not in RUNNER:
            rows.setdefault(floor[name], []).append(name)
    width = max(len(names) for names in rows.values())
    where = {name: ((width - len(names)) / 2 + i + 0.5, level) for level, names in rows.items() for i, name in enumerate(names)}
    where.update({name: (width + 1.5, floor[name]) for name in RUNNER})  # the runner: a column of its own
    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "mixuplib"})
    fig, ax = plt.subplots(figsize=(0.8 * (width + 3.5), 1.0 * (max(floor.values()) + 0.6)))
    for name, used in sorted(graph.items()):
        for dep in sorted(used):
            (x0, y0), (x1, y1) = where[name], where[dep]
            ax.annotate("", xy=(x1, y1 + 0.12), xytext=(x0, y0 - 0.12),
                        arrowprops={"arrowstyle": "->", "color": "0.65", "lw": 0.5, "shrinkA": 0, "shrinkB": 0})
    for name, (x, y) in where.items():
        colour = "0.35" if name in RUNNER else f"C{floor[name] - 1}"
        ax.text(x, y, name, ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": colour, "lw": 1.0})
    for level in rows:
        ax.text(-0.3, level, f"floor {level}", ha="right", va="center", fontsize=7, color="0.4")
    ax.text(width + 1.5, max(floor[n] for n in RUNNER) + 0.4, "the runner, apart", ha="center", fontsize=7, color="0.4")
    ax.set_xlim(-1.4, width + 2.3)
    ax.set_ylim(0.6, max(floor.values()) + 0.6)
    ax.axis("off")
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return output


def setup(app):
    app.connect("builder-inited", lambda app: draw())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
