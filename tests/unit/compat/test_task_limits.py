"""Which queued task instances ``RunnerLocalExecutor`` starts: the limits the scheduler keeps
(``max_active_tis_per_dagrun``, ``max_active_tis_per_dag``, ``max_active_tasks``), which
``DAG.test`` alone ignores; and not a resumed one before the workload that deferred it ended."""

from __future__ import annotations

from typing import Any

from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_openflow.compat.local_executor import RunnerLocalExecutor, admit, honour_limits


def _queued(*keys: tuple[str, str, int]) -> list[tuple[Any, Any]]:
    return [(TaskInstanceKey("d", task, run, 1, index), None) for task, run, index in keys]


def _dag() -> DAG:
    with DAG("d", schedule=None, max_active_tasks=3) as dag:
        EmptyOperator(task_id="capped", max_active_tis_per_dagrun=2)
        EmptyOperator(task_id="per_dag", max_active_tis_per_dag=1)
        EmptyOperator(task_id="free")
    return dag


def test_a_per_run_limit_counts_what_is_active_and_what_it_admits() -> None:
    queued = _queued(("capped", "r1", 1), ("capped", "r1", 2), ("capped", "r1", 3), ("capped", "r2", 0))
    with honour_limits(_dag()):
        admitted = admit(queued, active=[("d", "capped", "r1", 0)], running=[])
    indexes = [(key.run_id, key.map_index) for key, _ in admitted]
    assert indexes == [("r1", 1), ("r2", 0)]  # r1 had one active: one more; r2 is another run


def test_a_per_dag_limit_and_the_dags_max_active_tasks() -> None:
    queued = _queued(("per_dag", "r2", 0), ("free", "r1", 0), ("free", "r1", 1), ("free", "r1", 2))
    with honour_limits(_dag()):
        admitted = admit(queued, active=[("d", "per_dag", "r1", 0)], running=[("d", "x", "r1", -1)])
    # per_dag is busy in run r1; run r1 has one running task and room for two more.
    assert [(key.task_id, key.map_index) for key, _ in admitted] == [("free", 0), ("free", 1)]


def test_dags_without_registered_limits_are_never_held_back() -> None:
    queued = _queued(("capped", "r1", 1), ("capped", "r1", 2), ("capped", "r1", 3))
    assert admit(queued, active=[("d", "capped", "r1", 0)] * 3, running=[]) == queued
    with honour_limits(_dag()):
        pass
    assert admit(queued, active=[("d", "capped", "r1", 0)], running=[]) == queued  # unregistered on exit


class _Workload:
    """What the executor orders queued work by: its task instance's priority."""

    class ti:  # the attribute an ExecuteTask has
        priority_weight = 1


def test_a_resumed_task_instance_waits_until_the_workload_that_deferred_it_has_ended() -> None:
    """apache/airflow#72716: the deferring workload's end, read after the resumed one was sent,
    would fail it; read while it is still queued, it is known to be stale."""
    executor = RunnerLocalExecutor(parallelism=2)
    resumed = TaskInstanceKey("d", "wait", "r1", 1, -1)
    other = TaskInstanceKey("d", "free", "r1", 1, -1)
    executor.queued_tasks[resumed] = _Workload()
    executor.queued_tasks[other] = _Workload()
    executor._sent.add(resumed.primary)  # the workload that deferred it: sent, no end reported yet

    assert [key for key, _ in executor.order_queued_tasks_by_priority()] == [other]
    executor.change_state(resumed, "running")  # it is still running: still held
    assert [key for key, _ in executor.order_queued_tasks_by_priority()] == [other]
    assert executor.has_task(_TaskInstance(resumed))  # what keeps the stale report from failing it

    executor.change_state(resumed, "success")  # the deferring workload's end
    assert {key for key, _ in executor.order_queued_tasks_by_priority()} == {resumed, other}


class _TaskInstance:
    def __init__(self, key: TaskInstanceKey) -> None:
        self.key = key
        self.id = "ti-id"
