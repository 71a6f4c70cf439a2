"""Test-wide settings, applied before anything imports torch.

- The pinned CPU numerics (mixuplib.numerics.PINNED_ENV): the unit tests and every notebook
  kernel that nbval starts run single-threaded on the AVX2 kernels, so the re-executed chapters
  must reproduce the committed outputs byte for byte on any x86-64 machine. Whatever the
  caller's environment held for these variables is replaced. With pytest-xdist, each worker is
  one busy process on one core.
- Claims are enforced (mixuplib.claims.CHECK_ENV): nbval re-executes the book's own run, whose
  findings must hold.
- nbval re-executions write their results JSON outside the repository.
- Finished runs are cached in .cache/runs (mixuplib.runcache), as the runner caches them: a run
  one chapter trained, another loads.
"""

import importlib.util
import os
import tempfile
from pathlib import Path

# numerics.py is loaded by path: importing the package would import torch before the pin.
_spec = importlib.util.spec_from_file_location("_pinned_numerics", Path(__file__).with_name("mixuplib") / "numerics.py")
_numerics = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_numerics)
_numerics.pin_environment()
os.environ["MIXUPLIB_CHECK_CLAIMS"] = "1"
os.environ.setdefault("MIXUPLIB_RESULTS_DIR", tempfile.mkdtemp(prefix="mixuplib-results-"))
os.environ.setdefault("MIXUPLIB_RUN_CACHE", str(Path(__file__).parent / ".cache" / "runs"))

# A chapter being executed by the runner lives in a hidden file next to it until it succeeds.
collect_ignore_glob = ["notebooks/.*"]
