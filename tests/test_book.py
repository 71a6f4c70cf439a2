"""The book's files and the batch runner: what the pages, Colab and papermill rely on."""

import ast
import json
import os
from pathlib import Path

import nbformat
import pytest
import yaml

from mixuplib import book
from mixuplib.claims import CHECK_ENV

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_every_chapter_is_in_the_toc_and_every_profile():
    toc = (ROOT / "_toc.yml").read_text()
    profiles = book.load_profiles()
    assert CHAPTERS, "no chapter notebooks"
    for path in CHAPTERS:
        assert f"notebooks/{path.stem}" in toc, f"{path.stem} is not in _toc.yml"
        for name, spec in profiles.items():
            assert path.stem in spec["chapters"], f"profile {name} lacks chapter {path.stem}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_conventions(path):
    cells = code_cells(path)
    tags = [c.metadata.get("tags", []) for c in cells]
    assert "remove-cell" in tags[0] and "google.colab" in cells[0].source, "first code cell: the hidden Colab setup"
    assert f"git+{CONFIG['repository']['url']}" in cells[0].source, "Colab installs from the repository in _config.yml"
    assert "parameters" in tags[1], "second code cell: the papermill parameters"
    for i, cell in enumerate(cells):
        assert cell.execution_count is not None, f"code cell {i} was never executed"
        for out in cell.outputs:
            assert out.output_type != "error", f"code cell {i} has an error output"
            assert not (out.output_type == "stream" and out.name == "stderr"), f"code cell {i} wrote to stderr: {out.text[:200]}"
    source = "\n".join(c.source for c in cells)
    assert "import notebooks" not in source and "%run" not in source, "chapters import mixuplib, never each other"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_figures_have_captions_and_labels(path):
    for cell in code_cells(path):
        if any("image/png" in out.get("data", {}) for out in cell.outputs):
            figure = cell.metadata.get("mystnb", {}).get("figure", {})
            assert figure.get("caption") and figure.get("name", "").startswith("fig-"), f"uncaptioned figure in {cell.source[:80]!r}"


LAYERS = {  # a module may import only from modules of a lower layer
    "mixing": 0, "models": 0, "metrics": 0, "data": 0, "stats": 0, "numerics": 0, "attacks": 0,
    "batches": 0, "label_noise": 0, "seeding": 0, "history": 0, "progress": 0, "checkpoint": 0, "peers": 0,
    "profiles": 0,
    "losses": 1, "distributed": 1, "runcache": 1, "plots": 1, "results": 1, "claims": 1, "cost": 2, "summary": 2,
    "method": 2, "recipe": 3,  # ERM's loss comes from losses; a recipe builds a run's method
    "train": 4, "chapter": 4,
    "study": 5, "vrm": 5, "input_mixup": 5, "manifold": 5, "adamixup": 5, "ssl": 5, "cluster": 5,
    "adversarial_training": 5,
    "__init__": 6,
    "book": 7,
}


def test_mixuplib_layers_point_down():
    for path in sorted((ROOT / "mixuplib").glob("*.py")):
        layer = LAYERS[path.stem]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [node.module.split(".")[0]] if node.module else [alias.name for alias in node.names]
                for target in targets:
                    assert LAYERS[target] < layer, f"mixuplib/{path.name} (layer {layer}) imports {target} (layer {LAYERS[target]})"
    assert not [p for p in ROOT.glob("mixuplib/*.py") if p.stem not in LAYERS], "give every new module a layer here"


def tiny_notebook(path, body):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("value = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


def profiles_for(tmp_path, **chapters):
    return {"test": {"description": "", "output_dir": str(tmp_path / "out"), "parameters": {"value": 7}, "chapters": chapters}}


def test_runner_executes_with_parameters_and_writes_atomically(tmp_path, capsys):
    tiny_notebook(tmp_path / "ch.ipynb", "print(f'value is {value}')")
    status = book.run_profile("test", notebooks=tmp_path, profiles=profiles_for(tmp_path, ch={}))
    assert status == 0
    out = nbformat.read(tmp_path / "out" / "ch.ipynb", as_version=4)
    printed = [o.text for c in out.cells for o in c.get("outputs", []) if o.output_type == "stream"]
    assert printed == ["value is 7\n"]
    assert "papermill" not in out.metadata
    assert "ch " in capsys.readouterr().out  # the wall time line names the chapter
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ch.ipynb"]


def test_runner_failure_names_chapter_and_cell_and_leaves_nothing(tmp_path, capsys):
    tiny_notebook(tmp_path / "bad.ipynb", "raise ValueError('broken on purpose')")
    status = book.run_profile("test", notebooks=tmp_path, profiles=profiles_for(tmp_path, bad={}))
    err = capsys.readouterr().err
    assert status == 1
    assert "chapter bad failed in cell 2 (\"raise ValueError('broken on purpose')\")" in err and "broken on purpose" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_only_the_profiles_own_parameters_are_the_books_own_run(tmp_path, monkeypatch):
    """The runner tells each kernel whether its findings must hold (mixuplib.claims.CHECK_ENV):
    with the profile's parameters they do; with one changed (``--set``) the run is a reader's.
    The caller's setting is left as it was."""
    monkeypatch.setenv(CHECK_ENV, "caller's")
    tiny_notebook(tmp_path / "ch.ipynb", f"import os\nprint(os.environ[{CHECK_ENV!r}])")
    seen = {}
    for overrides in ({}, {"value": 3}):
        assert book.run_profile("test", notebooks=tmp_path, profiles=profiles_for(tmp_path, ch={}), overrides=overrides) == 0
        out = nbformat.read(tmp_path / "out" / "ch.ipynb", as_version=4)
        seen[bool(overrides)] = out.cells[-1].outputs[0].text.strip()
    assert seen == {False: "1", True: "0"}
    assert os.environ[CHECK_ENV] == "caller's"


def test_runner_rejects_unknown_profile_and_chapter(tmp_path, capsys):
    assert book.run_profile("nope", profiles=profiles_for(tmp_path)) == 2
    assert book.run_profile("test", ["missing"], profiles=profiles_for(tmp_path, ch={})) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'nope'" in err and "has no chapter ['missing']" in err


def test_paper_profile_plumbing_on_fake_cifar(tmp_path, monkeypatch):
    """The paper profile's code path (CIFAR-shaped data, the paper models) on CPU for a few
    steps, through the runner: the smoke profile, written to a temporary folder."""
    results = tmp_path / "results"
    monkeypatch.setenv("MIXUPLIB_RESULTS_DIR", str(results))
    profiles = book.load_profiles()
    profiles["smoke"]["output_dir"] = str(tmp_path / "smoke")
    # one chapter at a time: under xdist another worker is busy on the other core
    assert book.run_profile("smoke", profiles=profiles, jobs=1) == 0
    for path in CHAPTERS:
        assert (tmp_path / "smoke" / path.name).exists()
        if path.stem in profiles["smoke"]["summaries"]:  # it reads the records and writes none
            continue
        record = json.loads((results / f"{path.stem}.json").read_text())
        assert record["profile"] == "smoke" and record["device"] == "cpu" and record["n_runs"] == len(record["seeds"])
        assert "torch" in record["environment"] and "wall_time_s" not in record
        assert record["environment"]["cpu_numerics"]["pinned"] is True
        assert record["claims"], "every chapter lists its claims, even where the smoke profile does not enforce them"
        assert (tmp_path / "smoke" / path.name).exists()


def test_runner_pins_numerics_in_parallel_kernels_whatever_the_caller_set(tmp_path, monkeypatch, capfd):
    """Two chapters run at once, each kernel single-threaded on the AVX2 kernels even when the
    caller's environment asks for two threads and the default kernel family; the output is
    one line per chapter and the total, nothing on stderr."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    pinned = ("import os, time, torch\n"
              "print(os.environ['OMP_NUM_THREADS'], torch.get_num_threads(), torch.backends.cpu.get_cpu_capability(), "
              "os.environ['MKL_CBWR'])")
    # each kernel writes when it ran; with two jobs the two intervals overlap
    interval = "start = time.time(); time.sleep(3); Path(f'{value}.ran').write_text(f'{start} {time.time()}')"
    for name in ("a", "b"):
        tiny_notebook(tmp_path / f"{name}.ipynb", pinned + "\nfrom pathlib import Path\n" + interval)
    profiles = profiles_for(tmp_path, a={"value": "a"}, b={"value": "b"})
    profiles["test"]["pinned_numerics"] = True
    assert book.run_profile("test", notebooks=tmp_path, profiles=profiles, jobs=2) == 0
    for name in ("a", "b"):
        out = nbformat.read(tmp_path / "out" / f"{name}.ipynb", as_version=4)
        assert out.cells[-1].outputs[0].text == "1 1 AVX2 AVX2,STRICT\n"
    (a_start, a_end), (b_start, b_end) = ([float(t) for t in (tmp_path / f"{n}.ran").read_text().split()] for n in "ab")
    assert a_start < b_end and b_start < a_end, "the two chapters did not run at the same time"
    captured = capfd.readouterr()
    lines = captured.out.strip().splitlines()
    assert sorted(line.split()[0] for line in lines[:2]) == ["a", "b"] and len(lines) == 3
    assert lines[2].startswith("total") and "2 at a time" in lines[2]
    assert captured.err == ""


def test_runner_refuses_more_jobs_than_cores(tmp_path, capsys):
    tiny_notebook(tmp_path / "ch.ipynb", "pass")
    too_many = book.available_cores() + 1
    assert book.run_profile("test", notebooks=tmp_path, profiles=profiles_for(tmp_path, ch={}), jobs=too_many) == 2
    assert f"jobs must be an integer from 1 to {too_many - 1}" in capsys.readouterr().err


def test_runner_cli_overrides_parameters_and_output_dir(tmp_path, monkeypatch):
    tiny_notebook(tmp_path / "ch.ipynb", "print(f'value is {value!r}')")
    profiles = profiles_for(tmp_path, ch={})
    monkeypatch.setattr(book, "load_profiles", lambda: profiles)
    monkeypatch.setattr(book, "ROOT", tmp_path.parent)
    assert book.run_profile("test", notebooks=tmp_path, profiles=profiles, overrides={"value": [1, 2]},
                            output_dir=tmp_path / "elsewhere") == 0
    out = nbformat.read(tmp_path / "elsewhere" / "ch.ipynb", as_version=4)
    assert out.cells[-1].outputs[0].text == "value is [1, 2]\n"
    with pytest.raises(SystemExit):
        book.main(["run", "--profile", "test", "--set", "not a name=1"])


def test_a_run_into_another_folder_writes_its_results_there(tmp_path, monkeypatch):
    # e.g. a reader's --set run with --output-dir: the book's own results/embedded stays as it was
    tiny_notebook(tmp_path / "ch.ipynb", "import os\nprint(os.environ.get('MIXUPLIB_RESULTS_DIR'))")
    monkeypatch.delenv("MIXUPLIB_RESULTS_DIR", raising=False)
    assert book.run_profile("test", notebooks=tmp_path, profiles=profiles_for(tmp_path, ch={}), overrides={"value": 2},
                            output_dir=tmp_path / "elsewhere") == 0
    out = nbformat.read(tmp_path / "elsewhere" / "ch.ipynb", as_version=4)
    assert out.cells[-1].outputs[0].text == f"{tmp_path / 'elsewhere' / 'results'}\n"
    assert "MIXUPLIB_RESULTS_DIR" not in os.environ, "the caller's environment is restored"


def test_a_summary_starts_when_the_chapters_have_ended_and_reads_where_they_wrote(tmp_path, monkeypatch):
    """The profile's summaries run after every other chapter (here two jobs, so the summary would otherwise
    start beside the first chapter), and get records_dir: the folder this run's records went to."""
    monkeypatch.delenv("MIXUPLIB_RESULTS_DIR", raising=False)
    tiny_notebook(tmp_path / "a.ipynb", "import time\nfrom pathlib import Path\ntime.sleep(3)\nPath('a.done').write_text('')")
    tiny_notebook(tmp_path / "b.ipynb", "pass")
    tiny_notebook(tmp_path / "s.ipynb", "from pathlib import Path\nrecords_dir = globals().get('records_dir')\n"
                                        "print(Path('a.done').exists(), records_dir)")
    profiles = profiles_for(tmp_path, s={}, a={}, b={})
    profiles["test"]["summaries"] = ["s"]
    assert book.run_profile("test", notebooks=tmp_path, profiles=profiles, jobs=2, output_dir=tmp_path / "run") == 0
    out = nbformat.read(tmp_path / "run" / "s.ipynb", as_version=4)
    assert out.cells[-1].outputs[0].text == f"True {tmp_path / 'run' / 'results'}\n"


def test_replicate_counts_the_findings_that_hold_with_other_seeds_and_unpinned(tmp_path, capsys, monkeypatch):
    """Both runs are readers': the chapter finishes, and the table counts what held in each."""
    monkeypatch.setenv("MIXUPLIB_RESULTS_DIR", str(tmp_path / "unused"))
    params = nbformat.v4.new_code_cell("seeds = [0, 1]\nvalue = 1")
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "import mixuplib as mx\n"
        "from mixuplib import numerics\n"
        f"book = mx.Chapter('01_tiny', profile='test', seeds=seeds, device='cpu', data_root='.', results_dir={str(tmp_path)!r})\n"
        "book.claims.below('the seeds are the book\\'s own', max(seeds), 50)\n"
        "book.claims.check('the numerics are pinned', numerics.is_pinned(), '')\n"
        "book.claims.check('always', True, '')\n"
        "book.write({})\n")
    nb = nbformat.v4.new_notebook(cells=[params, body])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "01_tiny.ipynb")
    profiles = {"test": {"description": "", "output_dir": str(tmp_path / "out"), "pinned_numerics": True,
                         "chapters": {"01_tiny": {}}}}
    report = book.replicate("test", notebooks=tmp_path, profiles=profiles, jobs=1, output_dir=tmp_path / "replication")
    row = report["01_tiny"]
    assert row["seeds"] == [0, 1] and row["findings"] == 3
    assert row["seeds + 100"] == {"held": 2, "failed": ["the seeds are the book's own"]}
    assert row["unpinned"] == {"held": 2, "failed": ["the numerics are pinned"]}
    out = capsys.readouterr().out
    assert "does not hold, 01_tiny, unpinned: the numerics are pinned" in out
    assert json.loads((tmp_path / "replication" / "replication.json").read_text()) == report
    assert os.environ["MIXUPLIB_RESULTS_DIR"] == str(tmp_path / "unused")
