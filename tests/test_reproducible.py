"""The committed outputs are what the pinned runner produces, whatever the caller's environment.

Chapter 1 is re-executed by the batch runner, as `make book` does, in a subprocess whose
environment asks for two threads and other kernel families; the runner must pin them again
(mixuplib.numerics), and the executed notebook and its results JSON must be the committed
bytes. A parameter changed with ``--set`` makes the run a reader's: a finding it makes false
is marked in "What this run shows", and the chapter finishes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "01_erm_to_mixup"
# What a host might have set; every one of these changes a training run's bytes if it leaks in.
HOST_SETTINGS = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "ATEN_CPU_CAPABILITY": "default",
                 "MKL_CBWR": "AUTO", "ONEDNN_MAX_CPU_ISA": "ALL", "MIXUPLIB_PINNED_NUMERICS": "0"}


def run_chapter(tmp_path, *options, env=None):
    environ = {**os.environ, **(env or {}), "MIXUPLIB_RESULTS_DIR": str(tmp_path / "results")}
    command = [sys.executable, "-m", "mixuplib.book", "run", "--profile", "embedded", "--chapter", CHAPTER,
               "--jobs", "1", "--output-dir", str(tmp_path / "out"), *options]
    return subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=1200)


def first_difference(ours: Path, committed: Path) -> str:
    """Where two notebooks differ, as a reader would look for it: the cell and its output."""
    a, b = json.loads(ours.read_text()), json.loads(committed.read_text())
    for i, (x, y) in enumerate(zip(a["cells"], b["cells"])):
        if x != y:
            return f"cell {i + 1}: {json.dumps(x.get('outputs', x.get('source')))[:400]} != {json.dumps(y.get('outputs', y.get('source')))[:400]}"
    return "cell count or notebook metadata"


def test_chapter_reexecutes_to_the_committed_bytes_whatever_the_host_set(tmp_path):
    done = run_chapter(tmp_path, env=HOST_SETTINGS)
    assert done.returncode == 0, done.stderr
    ours, committed = tmp_path / "out" / f"{CHAPTER}.ipynb", ROOT / "notebooks" / f"{CHAPTER}.ipynb"
    assert ours.read_bytes() == committed.read_bytes(), first_difference(ours, committed)
    results = (tmp_path / "results" / f"{CHAPTER}.json").read_bytes()
    assert results == (ROOT / "results" / "embedded" / f"{CHAPTER}.json").read_bytes()
    assert done.stderr == "", "the runner's output is one line per chapter, nothing on stderr"


def test_a_readers_run_finishes_and_marks_the_finding_that_does_not_hold(tmp_path):
    # One epoch is far too little to memorise random labels: the chapter's first claim is false.
    done = run_chapter(tmp_path, "--set", "memorize_epochs=1")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "results" / f"{CHAPTER}.json").read_text())
    failing = [c["statement"] for c in record["claims"] if not c["holds"]]
    assert failing and failing[0].startswith("ERM fits random training labels"), failing
    shown = json.loads((tmp_path / "out" / f"{CHAPTER}.ipynb").read_text())["cells"][-1]["outputs"][0]["text"]
    assert f"{len(failing)} of {len(record['claims'])} findings do not hold in this run" in "".join(shown)
