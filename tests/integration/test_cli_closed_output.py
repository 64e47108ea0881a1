"""``airflow-openflow run`` whose reader goes away (``| head``): it ends promptly, exits 141 and
leaves none of the processes it started behind."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import psutil

from tests.flows import flow, py

_START_S = 300  # Airflow's start (database, API server) and a task on two busy cores
_END_S = 60  # from the closed pipe to the exit of the command


def _cli(
    document: Path, home: Path, mode: str = "executor", **streams: int | IO[bytes]
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env["AIRFLOW_HOME"] = str(home)  # its own metadata database: the abandoned run stays there
    env["OPENFLOW_RUN_MODE"] = mode  # executor: the processes it starts are what these tests stop
    home.mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_openflow.cli", "run", str(document)],
        stdin=subprocess.DEVNULL,
        env=env,
        **streams,  # type: ignore[call-overload]
    )


def _drain_until(pipe: IO[bytes], done: object, timeout: float) -> bytes:
    """Read ``pipe`` (so the command never blocks on a full pipe) until ``done()`` or the timeout."""
    fd = pipe.fileno()
    os.set_blocking(fd, False)
    seen = b""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen = (seen + chunk)[-20000:]
    return seen


def _still_running(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return alive


def _started_by(cli: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return psutil.Process(cli.pid).children(recursive=True)


def _assert_all_stopped(processes: list[psutil.Process]) -> None:
    deadline = time.monotonic() + 30  # a zombie whose parent is gone is reaped by init meanwhile
    while _still_running(processes) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _still_running(processes) == []


def test_run_into_a_pipe_closed_mid_run_exits_141_and_stops_every_process(tmp_path: Path) -> None:
    marker = tmp_path / "step-started"
    body = (
        f"import os, pathlib, time\npathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\n"
        "time.sleep(600)"
    )
    document = tmp_path / "slow.json"
    document.write_text(json.dumps(flow(py("a", body))))
    # stdout and stderr (Airflow's own logs) into one pipe, as `... 2>&1 | head`
    cli = _cli(document, tmp_path / "home", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert cli.stdout is not None
        seen = _drain_until(cli.stdout, marker.exists, _START_S)
        assert marker.exists(), (
            f"the step never started; the command printed:\n{seen.decode(errors='replace')}"
        )
        time.sleep(1)  # the step is in its sleep
        started = _started_by(cli)
        task_pid = int(marker.read_text())
        assert task_pid in {proc.pid for proc in started}  # the task process is one of them
        assert len(started) >= 4  # API server, triggerer, executor workers, task supervisor...

        closed_at = time.monotonic()
        cli.stdout.close()  # the reader goes away, as `head` does after its lines
        assert cli.wait(timeout=_END_S) == 141
        ended_in = time.monotonic() - closed_at
        _assert_all_stopped(started)
        assert ended_in < _END_S
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(timeout=10)


def test_run_whose_stdout_closes_while_it_prints_the_result(tmp_path: Path) -> None:
    document = tmp_path / "big.json"
    # ~600 KB of indented JSON: far more than a pipe holds, so the print meets the closed pipe.
    document.write_text(json.dumps(flow(py("a", "return list(range(100_000))"))))
    log = (tmp_path / "stderr.log").open("wb")
    cli = _cli(document, tmp_path / "home", stdout=subprocess.PIPE, stderr=log)
    try:
        assert cli.stdout is not None
        first = cli.stdout.readline()  # blocks until the result starts: the run is over by then
        assert first.strip() == b"["
        started = _started_by(cli)
        assert started, "the servers of the run are gone before its result was printed"
        cli.stdout.close()
        assert cli.wait(timeout=_END_S) == 141
        _assert_all_stopped(started)
        errors = (tmp_path / "stderr.log").read_text(errors="replace")
        assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors[-3000:]
    finally:
        log.close()
        if cli.poll() is None:
            cli.kill()
            cli.wait(timeout=10)


def test_an_in_process_run_into_a_pipe_closed_mid_run_exits_141(tmp_path: Path) -> None:
    marker = tmp_path / "step-started"
    body = (
        f"import os, pathlib, time\npathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\n"
        "time.sleep(600)"
    )
    document = tmp_path / "slow.json"
    document.write_text(json.dumps(flow(py("a", body))))
    cli = _cli(document, tmp_path / "home", "in_process", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert cli.stdout is not None
        seen = _drain_until(cli.stdout, marker.exists, _START_S)
        assert marker.exists(), (
            f"the step never started; the command printed:\n{seen.decode(errors='replace')}"
        )
        time.sleep(1)  # the step is in its sleep
        assert int(marker.read_text()) == cli.pid  # the step runs in the command's own process
        closed_at = time.monotonic()
        cli.stdout.close()
        assert cli.wait(timeout=_END_S) == 141
        assert time.monotonic() - closed_at < _END_S
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(timeout=10)
