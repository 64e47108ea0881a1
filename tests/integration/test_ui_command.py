"""The README's UI command (``make ui``: ``airflow standalone`` with the venv's ``bin`` first on
PATH) works from a shell whose PATH does not have the venv: ``airflow standalone`` starts its
components as ``airflow ...`` from PATH, which failed with ``FileNotFoundError: 'airflow'``.

It runs in a temporary AIRFLOW_HOME on free ports, waits for the API server's health endpoint, and
stops the whole process group by its pid, also when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (make, standalone and every component), SIGKILL to what is
    left of it after a grace time."""
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reaps make: a zombie would still count as a member of the group
            try:
                os.killpg(proc.pid, 0)  # anyone of the group left?
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_ui_starts_an_api_server_that_answers_its_health_check(tmp_path: Path) -> None:
    if not (VENV / "bin" / "airflow").exists() or VENV != REPO / ".venv":
        pytest.skip(f"the tests do not run in the repository's venv ({VENV}): make ui would not use it")
    port = _free_port()
    bin_dir = str(VENV / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    # A fresh shell: the venv is not on PATH (the case).
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != bin_dir)
    env.pop("VIRTUAL_ENV", None)
    env.update(
        {
            "AIRFLOW__API__PORT": str(port),  # what a user on a busy machine sets too
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__CORE__PARALLELISM": "2",
        }
    )
    log_path, home = tmp_path / "ui.log", tmp_path / "home"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            # -o: never (re)install from here: the venv is the one the tests run in
            [
                "make",
                "-C",
                str(REPO),
                "-o",
                f"{VENV.name}/.installed-stamp",
                "ui",
                f"AIRFLOW_HOME_DIR={home}",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as r,
            ):
                health = r.read().decode()
                break
            time.sleep(1)
        output = log_path.read_text(errors="replace")
        assert health is not None, f"no healthy API server (make exited {proc.poll()}):\n{output[-4000:]}"
        assert '"metadatabase":{"status":"healthy"}' in health.replace(" ", "")
        assert "FileNotFoundError" not in output, output[-4000:]
    finally:
        _stop_group(proc)
