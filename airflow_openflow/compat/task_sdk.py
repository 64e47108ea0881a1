"""Task SDK internals a task or the triggerer calls (checked on Airflow 3.3.2).

Each goes through the supervisor process of a task (``SUPERVISOR_COMMS``) or the triggerer's, the
same channel the public operators use; the message types are not public API.
"""

from __future__ import annotations

from typing import Any


def task_states(*, dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The state of one task instance of another task (a worker or the triggerer).

    Why: a sequential loop's gate and its trigger wait for the previous iteration. A task has
    ``context["ti"].get_task_states`` (public), but a trigger has no task instance; both call the
    same static method. Public replacement: a trigger-side task-state API (none in 3.3).
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    states = RuntimeTaskInstance.get_task_states(
        dag_id=dag_id, map_index=map_index, task_ids=[task_id], run_ids=[run_id]
    )
    state = states.get(run_id, {}).get(f"{task_id}_{map_index}")
    return str(state) if state is not None else None


def mapped_task_states(*, dag_id: str, run_id: str, task_id: str) -> dict[int, str]:
    """The states of every mapped instance of one task in one run, by map index (the triggerer).

    Why: the triggers of a loop's iterations wait for earlier iterations; one read of all of them
    serves every trigger of the loop (triggers/waits.py). Same call as ``task_states``, without a
    map index. Public replacement: a trigger-side task-state API (none in 3.3).
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    states = RuntimeTaskInstance.get_task_states(
        dag_id=dag_id, map_index=None, task_ids=[task_id], run_ids=[run_id]
    )
    prefix = f"{task_id}_"
    found: dict[int, str] = {}
    for key, state in states.get(run_id, {}).items():
        index = key[len(prefix) :] if key.startswith(prefix) else ""
        if index.isdigit() and state is not None:
            found[int(index)] = str(getattr(state, "value", state))
    return found


def xcom_value(*, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
    """One XCom value, through the configured XCom backend (a worker or the triggerer).

    Why: a trigger has no task instance to ``xcom_pull`` with (the iteration trigger reads a loop's
    evaluated ``parallelism``). Public replacement: ``XCom.get_one`` exported by ``airflow.sdk``
    (not in 3.3).
    """
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_one(key=key, dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index)


def set_xcom(*, dag_id: str, run_id: str, task_id: str, key: str, value: Any, map_index: int = -1) -> None:
    """Store an XCom of a task instance, through the configured XCom backend (the triggerer).

    Why: a trigger that ends its task (``TaskSuccessEvent``) records the task's result; the event's
    own ``xcoms`` are stored by the scheduler side as JSON text (Airflow 3.3.2), which a task reads
    back as a string, not the value. Public replacement: ``XCom.set`` exported by ``airflow.sdk``,
    or event XComs stored as values.
    """
    from airflow.sdk.execution_time.xcom import XCom

    XCom.set(key=key, value=value, dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index)


def dag_run_state(*, dag_id: str, run_id: str) -> str | None:
    """A DAG run's state (a worker or the triggerer).

    Why: a sub-flow step waits for its child run on a trigger of ours (``not_before``, see
    triggers/waits.py) instead of ``DagStateTrigger``. Public replacement: ``DagStateTrigger`` once
    apache/airflow#72716 is fixed.
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    state = RuntimeTaskInstance.get_dagrun_state(dag_id=dag_id, run_id=run_id)
    return str(getattr(state, "value", state)) if state is not None else None


def trigger_dag_run(*, dag_id: str, run_id: str, conf: dict[str, Any], note: str) -> bool:
    """Create a DAG run from a running task; False when a run with that id exists already.

    Why: ``TriggerDagRunOperator`` does this by raising ``DagRunTriggerException``, which also
    starts Airflow's own wait (``DagStateTrigger``, subject to apache/airflow#72716); we need our
    own wait. Public replacement: ``DagRunTriggerException`` once #72716 is fixed.
    """
    from airflow.sdk.exceptions import AirflowException
    from airflow.sdk.execution_time.comms import ErrorResponse, TriggerDagRun
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    response = SUPERVISOR_COMMS.send(TriggerDagRun(dag_id=dag_id, run_id=run_id, conf=conf, note=note))
    if isinstance(response, ErrorResponse):
        if str(getattr(response.error, "value", response.error)) == "DAGRUN_ALREADY_EXISTS":
            return False
        raise AirflowException(
            f"could not start run {run_id} of DAG {dag_id}: {response.error} {response.detail}"
        )
    return True


def skip_tasks(tasks: list[str | tuple[str, int]]) -> None:
    """Mark tasks (``task_id`` or ``(task_id, map_index)``) of the running task's DAG run skipped,
    leaving running and finished ones alone, without ending the running task.

    Why: an early stop skips every later step in one call, and the step goes on to push its result.
    ``DownstreamTasksSkipped`` (public) does the same but ends the task, before its result is
    pushed. Public replacement: a Task SDK ``skip`` call (none in 3.3).
    """
    from airflow.sdk.execution_time.comms import SkipDownstreamTasks
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    if tasks:
        SUPERVISOR_COMMS.send(SkipDownstreamTasks(tasks=tasks))
