"""benchmarks/gpu_check.py, the prepared GPU check, runs end to end on a CPU in seconds.

On a GPU it is the run whose JSON the book commits (results/gpu); here its --quick mode
goes through every part with tiny sizes, so the script cannot rot between GPU sessions.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_runs_every_part_on_cpu(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick",
               "--out", str(tmp_path), "--chapters", "01_erm_to_mixup"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = record["parts"]
    assert parts["chapters"]["01_erm_to_mixup"]["ok"]
    assert parts["throughput"]["ratio"] > 0 and parts["throughput"]["official_fp32_images_per_s"] > 0
    assert "skipped" in parts["sync"]  # host-device syncs exist only on a GPU
    runs = parts["fashion_mnist"]["runs"]
    assert set(runs) == {"ERM", "mixup (alpha = 1)"} and all(0 <= r["last"]["test_error"] <= 100 for r in runs.values())
    assert json.loads((tmp_path / "fashion_mnist.json").read_text())["epochs"] == 2
