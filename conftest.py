"""Test-wide settings: nbval re-executions write their results JSON outside the repository."""

import os
import tempfile

os.environ.setdefault("MIXUPLIB_RESULTS_DIR", tempfile.mkdtemp(prefix="mixuplib-results-"))
