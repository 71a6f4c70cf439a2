"""The structure the API page draws, read from the imports (tests/test_book.py holds the layers
every module must keep)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
import module_map  # noqa: E402


def test_the_map_reads_the_imports_methods_import_the_interface_not_the_loop():
    graph = module_map.imports()
    assert {"checkpoint", "distributed", "method", "recipe", "seeding"} <= graph["train"]
    floor = module_map.floors(graph)
    for method in ("vrm", "input_mixup", "manifold", "adamixup", "ssl"):
        assert "method" in graph[method] and "train" not in graph[method], method
    # The bottom imports nothing of ours: the mixing core, models, metrics, data; the Method interface sits above the
    # losses its ERM uses.
    assert {floor[name] for name in ("mixing", "models", "metrics", "data", "seeding")} == {1}
    assert floor["method"] > floor["losses"] and "losses" in graph["method"]
    # Nothing the chapters' library holds imports the runner.
    assert not any(set(module_map.RUNNER) & used for name, used in graph.items() if name not in module_map.RUNNER)


def test_a_cycle_has_no_floors():
    with pytest.raises(ValueError, match="import cycle: a -> b -> a"):
        module_map.floors({"a": {"b"}, "b": {"a"}})


def test_the_map_is_drawn(tmp_path):
    out = module_map.draw(tmp_path / "map.svg")
    text = out.read_text()
    assert text.startswith("<?xml") and all(f">{name}<" in text for name in ("mixing", "train", "book"))
