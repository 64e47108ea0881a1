"""The LocalExecutor ``run_flow`` uses: a shutdown that cannot hang, and the scheduler's
concurrency limits kept under ``DAG.test`` (checked on Airflow 3.3.2).

It lives in compat/ because it overrides ``LocalExecutor.end`` and reads its internals
(``workers``, ``activity_queue``, ``result_queue``, ``_read_results``). Public replacement: a
fixed ``LocalExecutor.end`` upstream; then ``run_flow`` can use ``LocalExecutor`` itself.

Airflow 3.3's ``LocalExecutor.end()`` sends one stop message per worker it sees alive and then
joins each worker without a timeout; when a worker dies or is reaped in between, another one can
wait for a stop message that never comes, and the caller hangs after the run has finished (seen
in our test suite). Here every worker gets a stop message, joins are bounded, and a worker that
does not stop is terminated (then killed) by its pid. A run that is abandoned before it ends
(``abort``) stops the workers and everything they started at once.

``DAG.test`` also runs a task that starts in the triggerer (``start_from_trigger``: a loop
iteration waiting for an earlier one) in a worker at once, from ``execute``. So this executor holds
such a task instance back until the iteration just before it has finished (a sequential loop),
then sends it to a worker (its ``execute`` finds that iteration finished and runs): the wait costs
no trip through the triggerer. When it waits for an iteration a run-time ``parallelism`` earlier,
it starts it the way the scheduler does (``TaskInstance.defer_task``): it writes the trigger the
task names and marks the task instance deferred, on a connection of its own; the runner's
triggerer runs the trigger, and ``DAG.test`` sends the resumed task instance (``next_method``
set) here again, to a worker this time. Public replacement: ``DAG.test`` starting tasks from the
triggerer.

``DAG.test`` sends every task instance that is ready to the executor at once: unlike the scheduler,
it ignores a task's ``max_active_tis_per_dagrun`` / ``max_active_tis_per_dag`` and the DAG's
``max_active_tasks``. So this executor holds back a queued task instance until its limits allow it
(``honour_limits``), counting what the scheduler counts (``ti_deps/dependencies_states.py``): task
instances it sent to a worker and not yet heard back from, and those running, deferred or awaiting
input in the metadata database. A task instance held back that has finished meanwhile (skipped by
the end of a loop) is dropped, not started. It overrides ``order_queued_tasks_by_priority`` (the
order in which ``BaseExecutor`` sends queued work), ``_process_workloads`` and ``change_state``,
and reads the ``task_instance`` table. Public replacement: ``DAG.test`` honouring those limits
(or ``run_flow`` running a scheduler of its own).

A task instance resumed from the triggerer is sent to a worker only once the workload that
deferred it has reported its end: ``DAG.test`` reads a report that arrives after the resumed
workload was sent as the resumed one's ("state mismatch", apache/airflow#72716), but one read while
the task instance is still queued here is known to be stale (``has_task``) and ignored. So a
trigger may resume a task in a worker as soon as it fires (``triggers/waits.py``,
``resumes_safely``). Public replacement: the fix of #72716.
"""

from __future__ import annotations

import contextlib
import datetime
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.executors.local_executor import LocalExecutor

from airflow_openflow.process_trees import stop_process_trees

_JOIN_SECONDS = 30.0
_ABORT_GRACE_SECONDS = 5.0

# Started and not yet ended: what ``abort_all`` stops when a run is abandoned.
_running: weakref.WeakSet[RunnerLocalExecutor] = weakref.WeakSet()


def results_waiting() -> bool:
    """Whether an executor of this process has a result its owner has not read yet (a task
    instance ended): what ``DAG.test``'s loop is woken by (``compat/dag_test_loop.py``)."""
    for executor in list(_running):
        with contextlib.suppress(Exception):  # a queue being closed
            if not executor.result_queue.empty():
                return True
    return False


def abort_all() -> None:
    """Stop the workers of every executor of this process that has not ended (see ``abort``)."""
    for executor in list(_running):
        executor.abort()


@dataclass(frozen=True, slots=True)
class DagLimits:
    """A DAG's concurrency limits, as the scheduler reads them from its tasks."""

    max_active_tasks: int | None = None  # task instances of one run in the running or queued state
    per_dagrun: dict[str, int] = field(default_factory=dict)  # task id -> max_active_tis_per_dagrun
    per_dag: dict[str, int] = field(default_factory=dict)  # task id -> max_active_tis_per_dag
    #: task id -> its ``start_trigger_args``, for the tasks that start in the triggerer
    start_in_triggerer: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, dag: Any) -> DagLimits:
        def limit(value: Any) -> int | None:
            return value if isinstance(value, int) and value >= 1 else None

        per_dagrun = {t.task_id: n for t in dag.tasks if (n := limit(t.max_active_tis_per_dagrun))}
        per_dag = {t.task_id: n for t in dag.tasks if (n := limit(t.max_active_tis_per_dag))}
        start_in_triggerer = {
            t.task_id: t.start_trigger_args
            for t in dag.tasks
            if getattr(t, "start_from_trigger", False) and getattr(t, "start_trigger_args", None)
        }
        return cls(limit(getattr(dag, "max_active_tasks", None)), per_dagrun, per_dag, start_in_triggerer)


#: dag id -> its limits, while ``honour_limits`` is entered for it.
_limits: dict[str, DagLimits] = {}

# One task instance: (dag_id, task_id, run_id, map_index), as TaskInstanceKey.primary.
Primary = tuple[str, str, str, int]


@contextlib.contextmanager
def honour_limits(dag: Any) -> Iterator[None]:
    """While entered, ``RunnerLocalExecutor`` starts the task instances of ``dag`` within the
    DAG's and its tasks' concurrency limits, as the scheduler would."""
    _limits[dag.dag_id] = DagLimits.of(dag)
    try:
        yield
    finally:
        _limits.pop(dag.dag_id, None)


def admit(
    queued: Sequence[tuple[Any, Any]], active: Iterable[Primary], running: Iterable[Primary]
) -> list[tuple[Any, Any]]:
    """The queued (key, workload) items that may start now, in order: ``active`` are the task
    instances counted against task-level limits (sent, running, deferred, awaiting input),
    ``running`` those counted against the DAG's ``max_active_tasks`` (sent, running). A key is a
    ``TaskInstanceKey``; DAGs without limits registered are never held back."""
    per_dagrun: Counter[tuple[str, str, str]] = Counter()
    per_dag: Counter[tuple[str, str]] = Counter()
    per_run: Counter[tuple[str, str]] = Counter()
    for dag_id, task_id, run_id, _ in set(active):
        per_dagrun[(dag_id, run_id, task_id)] += 1
        per_dag[(dag_id, task_id)] += 1
    for dag_id, _, run_id, _ in set(running):
        per_run[(dag_id, run_id)] += 1
    admitted = []
    for key, workload in queued:
        limits = _limits.get(getattr(key, "dag_id", ""))
        if limits is not None:
            run_limit = limits.per_dagrun.get(key.task_id)
            dag_limit = limits.per_dag.get(key.task_id)
            if (
                (run_limit is not None and per_dagrun[(key.dag_id, key.run_id, key.task_id)] >= run_limit)
                or (dag_limit is not None and per_dag[(key.dag_id, key.task_id)] >= dag_limit)
                or (
                    limits.max_active_tasks is not None
                    and per_run[(key.dag_id, key.run_id)] >= limits.max_active_tasks
                )
            ):
                continue
            per_dagrun[(key.dag_id, key.run_id, key.task_id)] += 1
            per_dag[(key.dag_id, key.task_id)] += 1
            per_run[(key.dag_id, key.run_id)] += 1
        admitted.append((key, workload))
    return admitted


#: Task instance states counted against the limits once a task instance left the executor.
_ACTIVE = ("running", "deferred", "awaiting_input")
#: A held-back task instance in one of these states never needs to run (skipped by another task).
_DONE = ("success", "failed", "skipped", "upstream_failed", "removed")


def _task_instance_rows(dag_ids: Sequence[str], run_ids: Sequence[str]) -> list[tuple[Primary, str]]:
    """(task instance, state) of the task instances of ``dag_ids`` that are running, deferred or
    awaiting input, and of those of ``run_ids`` that have finished, in the metadata database; read
    on a connection of its own (``DAG.test`` holds the thread's scoped session)."""
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import and_, or_, select

    table = TaskInstance.__table__
    query = select(table.c.dag_id, table.c.task_id, table.c.run_id, table.c.map_index, table.c.state).where(
        table.c.dag_id.in_(list(dag_ids)),
        or_(
            table.c.state.in_(_ACTIVE),
            and_(table.c.run_id.in_(list(run_ids)), table.c.state.in_(_DONE)),
        ),
    )
    assert settings.engine is not None
    with settings.engine.connect() as connection:
        rows = connection.execute(query).all()
    return [((r[0], r[1], r[2], int(r[3])), str(r[4])) for r in rows]


def _start_in_triggerer_args(key: Any) -> Any:
    """The ``start_trigger_args`` of the task of ``key`` when it starts in the triggerer, or None."""
    limits = _limits.get(key.dag_id)
    return limits.start_in_triggerer.get(key.task_id) if limits is not None else None


def _start_in_triggerer(keys: Sequence[Any]) -> list[Any]:
    """Of ``keys`` (queued task instances of tasks that start in the triggerer), mark deferred on
    their task's trigger those that are not resuming from it (no ``next_method``), as the
    scheduler's ``TaskInstance.defer_task`` does; returns the keys so deferred."""
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    assert settings.engine is not None
    deferred = []
    with Session(bind=settings.engine) as session:
        for key in keys:
            args = _limits[key.dag_id].start_in_triggerer[key.task_id]
            ti = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == key.dag_id,
                    TaskInstance.task_id == key.task_id,
                    TaskInstance.run_id == key.run_id,
                    TaskInstance.map_index == key.map_index,
                )
            ).one_or_none()
            if ti is None or ti.next_method is not None or str(ti.state) != "queued":
                continue
            trigger = Trigger(classpath=args.trigger_cls, kwargs=dict(args.trigger_kwargs or {}))
            session.add(trigger)
            session.flush()
            ti.state = "deferred"
            ti.trigger_id = trigger.id
            ti.next_method = args.next_method
            ti.next_kwargs = dict(args.next_kwargs or {})
            ti.start_date = datetime.datetime.now(tz=datetime.UTC)
            ti.trigger_timeout = ti.start_date + args.timeout if args.timeout else None
            deferred.append(key)
        session.commit()
    return deferred


class RunnerLocalExecutor(LocalExecutor):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sent: set[Primary] = set()  # task instances sent to a worker, not yet heard back from

    def start(self) -> None:
        super().start()
        _running.add(self)

    def order_queued_tasks_by_priority(self) -> list[tuple[Any, Any]]:
        """The queued task instances that may start now (``admit``), highest priority first, then
        by map index (a loop's iterations start in order)."""
        ordered = sorted(
            super().order_queued_tasks_by_priority(),
            key=lambda item: (-(item[1].ti.priority_weight or 0), item[0].map_index),
        )
        # A task instance whose earlier workload has not reported its end yet (it deferred, and its
        # trigger fired at once) stays queued until it has: that late report, read while the
        # resumed one is still queued here, cannot fail it (apache/airflow#72716).
        ordered = [(key, workload) for key, workload in ordered if key.primary not in self._sent]
        dag_ids = sorted({key.dag_id for key, _ in ordered if key.dag_id in _limits})
        if not dag_ids:
            return ordered
        run_ids = sorted({key.run_id for key, _ in ordered if key.dag_id in _limits})
        states = dict(_task_instance_rows(dag_ids, run_ids))
        done = [key for key, _ in ordered if states.get(key.primary) in _DONE]
        for key in done:  # e.g. later iterations a loop's end skipped while they waited here
            self.queued_tasks.pop(key, None)
        ordered = [(key, workload) for key, workload in ordered if key not in done]
        # A task that starts in the triggerer under the scheduler waits for an earlier loop
        # iteration. The iteration just before (sequential loops): held here until it has
        # finished, then sent to a worker (its execute() finds it finished): no trip through the
        # triggerer. One window earlier (a parallelism evaluated at run time): the triggerer.
        held: set[Any] = set()
        to_triggerer = []
        for key, _ in ordered:
            args = _start_in_triggerer_args(key)
            if args is None or key.map_index == 0:
                continue
            kwargs = args.trigger_kwargs or {}
            if kwargs.get("window") != 1:
                to_triggerer.append(key)
            elif states.get((key.dag_id, kwargs["last_task_id"], key.run_id, key.map_index - 1)) not in _DONE:
                held.add(key)
        for key in _start_in_triggerer(to_triggerer) if to_triggerer else ():
            self.queued_tasks.pop(key, None)
        ordered = [
            (key, workload) for key, workload in ordered if key in self.queued_tasks and key not in held
        ]
        active = self._sent | {primary for primary, state in states.items() if state in _ACTIVE}
        running = self._sent | {primary for primary, state in states.items() if state == "running"}
        return admit(ordered, active, running)

    def _process_workloads(self, workload_list: Any) -> None:
        for workload in workload_list:
            key: Any = getattr(workload, "key", None)
            if hasattr(key, "primary"):
                self._sent.add(key.primary)
        super()._process_workloads(workload_list)

    def change_state(self, key: Any, state: Any, info: Any = None, remove_running: bool = True) -> None:
        # A worker reports "running" when it takes a task instance, then how its process ended.
        if hasattr(key, "primary") and str(state) not in ("running", "queued"):
            self._sent.discard(key.primary)
        super().change_state(key, state, info, remove_running=remove_running)

    def abort(self) -> None:
        """Stop every worker and what it runs (task supervisors, task processes, their
        subprocesses) now, by pid: for a run that is abandoned (``DAG.test`` raised, the caller's
        output closed, a signal). ``DAG.test`` ends its executor only when the run finishes; left
        alone, idle workers wait for work forever and multiprocessing's exit handler joins them."""
        _running.discard(self)
        workers: list[Any] = list(getattr(self, "workers", {}).values())
        stop_process_trees([proc.pid for proc in workers if proc.pid], grace_s=_ABORT_GRACE_SECONDS)
        for proc in workers:
            proc.join(timeout=1)  # reap: they are our children
            with contextlib.suppress(ValueError):
                proc.close()
        self.workers: dict[int, Any] = {}

    def end(self) -> None:
        self.log.debug("Stopping the run_flow LocalExecutor workers")
        workers: list[Any] = list(self.workers.values())
        for _ in workers:
            self.activity_queue.put(None)  # one stop message per worker, alive or not
        for proc in workers:
            proc.join(timeout=_JOIN_SECONDS)
            if proc.is_alive():
                self.log.warning("LocalExecutor worker %s did not stop; terminating it", proc.pid)
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
            with contextlib.suppress(ValueError):
                proc.close()
        self.workers = {}
        _running.discard(self)
        self._read_results()
        self.activity_queue.close()
        self.result_queue.close()
