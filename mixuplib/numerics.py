"""Pinned CPU numerics: the same bytes on any x86-64 machine.

A float32 training run on CPU depends on more than its seed. The number of threads changes
the order of reductions; PyTorch's own kernels (ATen), oneDNN (convolutions), MKL (matrix
products) and OpenBLAS (NumPy's linear algebra) each pick a kernel family (AVX2, AVX-512)
from the processor they find. Measured on two 2-core machines, either change moved a small
CNN's test error after 5 epochs by 0.3 to 1.2 points.

The embedded profile therefore runs every chapter in a process whose environment fixes all
of them *before torch is imported*: one thread, the AVX2 kernel family (every x86-64 machine
of the last decade has it), and MKL's conditional numerical reproducibility mode for AVX2.
The batch runner (``python -m mixuplib.book``) and the test suite (nbval and the unit tests)
start their notebook kernels with :data:`PINNED_ENV`; whatever the caller's environment held
for these variables is replaced.

Outside them (Colab, a GPU box, a plain ``jupyter`` session) nothing is pinned: the chapters
run with every core and the fastest kernels, and their numbers differ from the committed ones
in the last digits. The chapters' claims are what must hold there too.
"""

from __future__ import annotations

import os
from typing import MutableMapping

__all__ = ["PINNED_ENV", "pin_environment", "is_pinned", "describe", "cpu_name"]

PINNED_ENV: dict[str, str] = {
    # One thread everywhere: reductions in one fixed order, and one busy process per core.
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    # ATen's vectorised kernels: AVX2 even where the CPU has AVX-512.
    "ATEN_CPU_CAPABILITY": "avx2",
    # oneDNN (convolutions, some matrix products): no instruction set beyond AVX2.
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    # MKL: conditional numerical reproducibility on the AVX2 code path, also across threads.
    "MKL_CBWR": "AVX2,STRICT",
    # NumPy's OpenBLAS (SVD, PCA in the chapters): the Haswell (AVX2) kernels.
    "OPENBLAS_CORETYPE": "Haswell",
    # Python's own hashing, in case a set's order ever reaches an output.
    "PYTHONHASHSEED": "0",
    # ipykernel's debugger warns about frozen modules on every kernel start; nothing to do with us.
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    # The marker mixuplib reads at import to fix torch's inter-op threads too.
    "MIXUPLIB_PINNED_NUMERICS": "1",
}


def pin_environment(environ: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set :data:`PINNED_ENV` in ``environ`` (default ``os.environ``), replacing what was there.

    Processes started afterwards (papermill's and nbval's kernels) inherit it. It must run
    before torch is imported in a process whose own numbers matter.
    """
    environ = os.environ if environ is None else environ
    environ.update(PINNED_ENV)
    return environ


def is_pinned(environ: MutableMapping[str, str] | None = None) -> bool:
    """Whether ``environ`` (default ``os.environ``) holds every value of :data:`PINNED_ENV`."""
    environ = os.environ if environ is None else environ
    return all(environ.get(k) == v for k, v in PINNED_ENV.items())


def describe() -> dict:
    """The numeric environment of this process, for a chapter's results JSON.

    ``pinned`` says whether the whole of :data:`PINNED_ENV` is in force; the rest is what
    torch reports it actually uses.
    """
    import torch

    return {
        "pinned": is_pinned(),
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "environment": {k: os.environ.get(k) for k in PINNED_ENV if k != "PYDEVD_DISABLE_FILE_VALIDATION"},
    }


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else :func:`platform.processor`): machines of
    different vendors give different bytes under the same pins (README, "Same bytes")."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
