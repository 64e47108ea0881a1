"""Test-session setup: a temporary AIRFLOW_HOME of the session's own, set before Airflow is imported.

Airflow reads its configuration when first imported, so this runs at conftest import time. The
runner (``airflow_openflow.run_flow``) starts one Execution API server for the session and stops it
by its pid when the process exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="openflow-test-airflow-home-"))
for _key in [k for k in os.environ if k.startswith("AIRFLOW__") or k == "AIRFLOW_HOME"]:
    del os.environ[_key]  # never the developer's own Airflow settings
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__OPENFLOW__PARSE_CACHE_DIR"] = str(_HOME / "parse-cache")  # gone with the home
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

REPO = Path(__file__).resolve().parent.parent


def pytest_sessionfinish() -> None:
    """Stop the servers ``run_flow`` started in this process (API server, triggerer) and remove the
    session's AIRFLOW_HOME now: an xdist worker may end without running its atexit handlers, which
    left both behind after the suite."""
    import sys

    runner = sys.modules.get("airflow_openflow.runner")
    if runner is not None:
        runner.close_runner()
    shutil.rmtree(_HOME, ignore_errors=True)
