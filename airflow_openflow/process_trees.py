"""Stopping processes with everything they started (the ``run`` command's server and executor
workers): SIGTERM first, SIGKILL to what is left after a grace period. Uses psutil (an Airflow
dependency), imported when a stop is asked for."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any


def stop_process_trees(pids: Iterable[int], *, grace_s: float) -> None:
    """Stop each process of ``pids`` and all its descendants, by pid: the whole tree is listed
    first (a parent that dies first would leave its children out of reach), then SIGTERM to all
    of them, SIGKILL to what still runs after ``grace_s``. A zombie counts as stopped (its parent
    reaps it). psutil (an Airflow dependency) checks each pid's start time before signalling, so a
    reused pid is never hit."""
    import psutil

    tree: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            tree.extend(root.children(recursive=True))
            tree.append(root)
    stop_processes(tree, grace_s=grace_s)


def stop_processes(processes: Iterable[Any], *, grace_s: float) -> None:
    """SIGTERM to each ``psutil.Process`` still running, SIGKILL to those left after ``grace_s``."""
    import psutil

    tree = list(processes)

    def running(proc: psutil.Process) -> bool:
        try:
            return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    for stop, wait_s in ((psutil.Process.terminate, grace_s), (psutil.Process.kill, 5.0)):
        tree = [proc for proc in tree if running(proc)]
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                stop(proc)
        deadline = time.monotonic() + wait_s
        while tree and time.monotonic() < deadline:
            time.sleep(0.05)
            tree = [proc for proc in tree if running(proc)]
        if not tree:
            return
