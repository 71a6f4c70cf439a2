"""Fingerprints of a pinned-numerics CPU run: compare them between two machines.

The embedded profile promises the same bytes on any x86-64 machine (mixuplib.numerics). This
script re-executes itself under the pinned environment, trains what the chapters train (a
small CNN with input mixup on Fashion-MNIST, an MLP with ERM), takes an SVD through NumPy,
and prints a short hash of each result's bytes, with the processor and its kernel families.
Equal hashes on two machines mean the chapters will reproduce there byte for byte.

    python benchmarks/numerics_probe.py [--data-root data] [--source /usr/share/datasets/fashion-mnist] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fingerprint(tensor_or_array) -> str:
    import numpy as np

    array = tensor_or_array.detach().cpu().numpy() if hasattr(tensor_or_array, "detach") else np.asarray(tensor_or_array)
    return hashlib.sha256(array.tobytes()).hexdigest()[:16]


def probe(data_root: str, source: str) -> dict:
    import numpy as np
    import torch

    import mixuplib as mx
    from mixuplib import data, numerics

    full = data.fashion_mnist(data_root, source=source)
    split = full.subset(2000, 1000, generator=torch.Generator().manual_seed(0))
    recipe = mx.Recipe(model="small_cnn", epochs=2, batch_size=100, lr=0.05, milestones=())
    cnn, cnn_history = mx.train_on(split, mx.InputMixup(1.0), seed=0, recipe=recipe)
    mlp, mlp_history = mx.train_on(split, mx.ERM(), seed=0, recipe=recipe.replace(model="mlp", epochs=3))
    singular = np.linalg.svd(np.random.default_rng(0).standard_normal((300, 50)), compute_uv=False)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {
        "cpu": numerics.cpu_name(),
        "has_avx512f": " avx512f" in flags,
        "numerics": numerics.describe(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "small_cnn_mixup_weights": fingerprint(torch.cat([p.flatten() for p in cnn.parameters()])),
        "small_cnn_mixup_test_error": f"{cnn_history.last['test_error']:.4f}",
        "mlp_erm_weights": fingerprint(torch.cat([p.flatten() for p in mlp.parameters()])),
        "numpy_svd": fingerprint(singular),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(ROOT / "data"))
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--json", help="also write the fingerprints here")
    parser.add_argument("--in-pinned-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.in_pinned_process:
        # Pin before torch is imported: a fresh process with the pinned environment.
        sys.path.insert(0, str(ROOT))
        from mixuplib.numerics import PINNED_ENV

        env = {**os.environ, **PINNED_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        return subprocess.call([sys.executable, __file__, *sys.argv[1:], "--in-pinned-process"], env=env)
    result = probe(args.data_root, args.source)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
