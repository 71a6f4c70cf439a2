"""Test-wide settings: nbval re-executions write their results JSON outside the repository."""

import os
import tempfile

os.environ.setdefault("MIXUPLIB_RESULTS_DIR", tempfile.mkdtemp(prefix="mixuplib-results-"))

# A chapter being executed by the runner lives in a hidden file next to it until it succeeds.
collect_ignore_glob = ["notebooks/.*"]
