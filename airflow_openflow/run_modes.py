"""``run_flow``'s two modes: ``executor`` (task processes, a triggerer, an API server: full
fidelity) and ``in_process`` (public ``dag.test()`` without an executor, in the calling process),
and which one a flow gets (docs/run-flow.md, Modes)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: ``run_flow``'s modes; ``OPENFLOW_RUN_MODE`` sets the default (``auto``).
RUN_MODES = ("auto", "executor", "in_process")
RUN_MODE_ENV = "OPENFLOW_RUN_MODE"


class RunModeError(ValueError):
    """An unknown mode, or ``in_process`` for a flow that needs the executor."""


def requested_mode(mode: str | None) -> str:
    chosen = mode if mode is not None else (os.environ.get(RUN_MODE_ENV) or "auto")
    if chosen not in RUN_MODES:
        source = "mode" if mode is not None else RUN_MODE_ENV
        raise RunModeError(f"{source} must be one of {', '.join(RUN_MODES)}, not {chosen!r}")
    return chosen


def choose_mode(dag: Any, requested: str) -> str:
    """``"executor"`` or ``"in_process"`` for ``dag`` given the ``requested`` mode; raises
    :class:`RunModeError` when ``in_process`` is asked of a flow that needs the executor."""
    reason = executor_reason(dag) if requested != "executor" else "requested"
    if requested == "in_process" and reason is not None:
        raise RunModeError(f"flow {dag.dag_id!r} cannot run in process: {reason}")
    return "executor" if reason is not None else "in_process"


def planned_mode(flow: Mapping[str, Any] | str | os.PathLike[str], mode: str | None = None) -> str:
    """The mode (``"executor"`` or ``"in_process"``) in which ``run_flow(flow, mode=mode)`` would run
    ``flow`` now; builds its DAG without running it (the document must be valid)."""
    from airflow_openflow.compile import dag_id_for_document
    from airflow_openflow.dag_factory import load_openflow_dags
    from airflow_openflow.spec import load_flow

    requested = requested_mode(mode)
    if requested == "executor":
        return "executor"
    with tempfile.TemporaryDirectory(prefix="openflow-plan-") as folder:
        if isinstance(flow, Mapping):
            parsed = load_flow(dict(flow)).flow
            target = Path(folder) / f"{dag_id_for_document(parsed.summary, parsed.content_hash)}.json"
            target.write_text(json.dumps(flow, ensure_ascii=False), encoding="utf-8")
        else:
            target = Path(flow).resolve()
        (dag,) = load_openflow_dags(target, {}, strict=True).values()
    return choose_mode(dag, requested)


def executor_reason(dag: Any) -> str | None:
    """Why the tasks of ``dag`` must run through the executor (task processes running at the same
    time, a triggerer, an API server), or None when ``in_process`` runs it the same way.

    In process, tasks run one at a time and a deferred task's trigger runs inline, at once; so a
    task that waits for another task instance (a sequential loop's next iteration, a later branch
    of a sequential branchall, a parallel loop with a ``parallelism`` window), for a child DAG run
    (a sub-flow of its own DAG: nothing would run it) or for a person (an approval, answered
    through the API server) needs the executor. Sleeps run inline (same wait, same order). So does
    a task that runs parallel branches or iterations in threads of its own: Airflow's in-process
    supervisor channel serves one thread at a time (docs/run-flow.md, Modes)."""
    from airflow_openflow.operators.approval import StepApprovalOperator
    from airflow_openflow.operators.body import BodyStepOperator
    from airflow_openflow.operators.subflow import SubFlowRunOperator
    from airflow_openflow.spec.model import FlowModule, iter_modules

    for task in dag.tasks:
        if isinstance(task, StepApprovalOperator):
            return f"task {task.task_id} is an approval"
        if isinstance(task, SubFlowRunOperator):
            return f"task {task.task_id} runs a sub-flow as a DAG run of its own"
        if isinstance(task, BodyStepOperator) and (task.loop_gate is not None or task.after_branch):
            return f"task {task.task_id} waits for an earlier loop iteration or branch"
        module = getattr(task, "module", None)
        if isinstance(module, FlowModule) and any(
            getattr(inner.value, "parallel", False) for inner in iter_modules([module])
        ):
            return f"task {task.task_id} may run parallel branches or iterations in threads"
    if threading.current_thread() is not threading.main_thread():
        return "run_flow is called outside the main thread (step timeouts need the signal timer)"
    return None
