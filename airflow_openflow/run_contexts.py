"""The contexts ``run_flow`` runs ``DAG.test`` in: what ``DAG.test`` lacks next to a deployment's
scheduler (approval timeouts, concurrency limits, a loop woken by the executor), and a quiet
console (the caller keeps stdout)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from airflow_openflow.compat.metadata import expire_awaiting_input_sweep


@contextlib.contextmanager
def approval_timeouts(dag: Any) -> Iterator[None]:
    """Approval tasks wait in ``awaiting_input`` until answered through the API server, or until
    their timeout, which only the scheduler enforces; ``DAG.test`` has none. So while a flow with
    approval steps runs, Airflow's own timeout sweep runs every second in a thread."""
    from airflow_openflow.operators.approval import StepApprovalOperator

    if not any(isinstance(task, StepApprovalOperator) for task in dag.tasks):
        yield
        return
    stop = threading.Event()
    sweep_once = expire_awaiting_input_sweep(logging.getLogger("airflow_openflow.runner.approvals"))

    def sweep() -> None:
        while not stop.wait(1.0):
            try:
                sweep_once()
            except Exception:  # keep sweeping: one failed database round must not end the wait
                logging.getLogger(__name__).exception("approval timeout sweep failed")

    thread = threading.Thread(target=sweep, name="openflow-approval-timeouts", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


@contextlib.contextmanager
def executor_mode(dag: Any) -> Iterator[None]:
    """What ``DAG.test(use_executor=True)`` lacks: the scheduler's concurrency limits (it ignores
    ``max_active_tis_per_dagrun``; our executor does not), and a loop that sends a step's
    successor as soon as the step ended rather than at its next look, up to a second later."""
    from airflow_openflow.compat.dag_test_loop import woken_by
    from airflow_openflow.compat.local_executor import honour_limits, results_waiting

    with honour_limits(dag), woken_by(results_waiting):
        yield


@contextlib.contextmanager
def quiet() -> Any:
    """Airflow's scheduling loop prints to stdout; keep stdout for the caller (the CLI prints the
    result there) by sending file descriptor 1 to stderr while Airflow runs."""
    sys.stdout.flush()
    saved = os.dup(1)
    # The scheduling loop's INFO chatter (and a warning on every loop while tasks are queued) is
    # progress, not news: keep this process's console to warnings. Task logs keep their own level.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    test_loop_log = logging.getLogger("airflow.sdk.definitions.dag")
    test_loop_level = test_loop_log.level
    test_loop_log.setLevel(logging.ERROR)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        root.setLevel(level)
        test_loop_log.setLevel(test_loop_level)
