"""Triggers our deferred tasks wait on: another task instance finished (the previous iteration of a
sequential loop), or a DAG run ended (a sub-flow's child run).

Both fire no sooner than ``not_before``. Airflow 3.3.2 fails a deferred task whose trigger fires
before the scheduler has processed the exit of the workload that deferred it: the resumed attempt
is marked failed ("finished with state success, but the task instance's state attribute is
running", apache/airflow#72716, open). Operators therefore wait briefly in the worker first
(``wait_in_worker``) and defer with ``not_before`` = now + ``SETTLE_S``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_openflow.compat.task_sdk import dag_run_state as compat_dag_run_state
from airflow_openflow.compat.task_sdk import task_states as compat_task_state

#: Task states after which a task instance will not run again without a clear.
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def task_state(dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The state of one task instance (works in a worker and the triggerer)."""
    return compat_task_state(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)


#: Seconds a deferral lasts at least, and a wait is done in the worker before deferring.
SETTLE_S = 10.0


def wait_in_worker(done: Callable[[], bool], seconds: float = SETTLE_S, poll_s: float = 0.5) -> bool:
    """Poll ``done`` for up to ``seconds`` in the task itself; whether it became true. Short waits
    never defer (which would also cost a few seconds of scheduling)."""
    deadline = time.monotonic() + seconds
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def not_before() -> float:
    """When a deferral that starts now may end at the earliest (epoch seconds)."""
    return time.time() + SETTLE_S


async def _settle(until: float) -> None:
    delay = until - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


class _PollingTrigger(BaseTrigger):
    """Waits, in the triggerer, until a state read through the Execution API has ended.

    Polls the state every ``poll_interval`` seconds, from ``not_before`` on, and fires one event
    ``{"state": ...}`` once it is one of ``ended_states``. Airflow has no event for "another task
    instance finished" or "another DAG run ended" a trigger could await. Subclasses pass their
    identifying fields (serialized with the rest, as keyword arguments of their own constructor)
    and read the state.

    :param poll_interval: Seconds between two reads of the state.
    :param not_before: Epoch seconds before which the trigger does not look (nor fire); see the
        module's docstring for why (``not_before()`` gives now + ``SETTLE_S``). 0: at once.
    :param identity: What the subclass reads the state of (e.g. ``dag_id``, ``run_id``).
    """

    ended_states: frozenset[str] = frozenset()

    def __init__(self, *, poll_interval: float, not_before: float = 0.0, **identity: Any) -> None:
        super().__init__()
        self.identity = identity
        self.poll_interval = poll_interval
        self.not_before = not_before

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {**self.identity, "poll_interval": self.poll_interval, "not_before": self.not_before}
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def read_state(self) -> str | None:
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        await _settle(self.not_before)
        lookup = sync_to_async(self.read_state)
        while True:
            state = await lookup()
            if state in self.ended_states:
                yield TriggerEvent({"state": state})
                return
            await asyncio.sleep(self.poll_interval)


class TaskFinishedTrigger(_PollingTrigger):
    """Fires once the task instance ``(task_id, map_index)`` of the run is in a finished state.

    What the first step of a loop iteration defers on while it waits for an earlier iteration
    (``operators/body.py``); the event is ``{"state": <that task instance's state>}``, one of
    ``FINISHED_STATES``.

    :param dag_id: The DAG of the task instance.
    :param run_id: Its DAG run.
    :param task_id: Its task.
    :param map_index: Its map index (the iteration), -1 for an unmapped task.
    :param poll_interval: Seconds between two reads of its state.
    :param not_before: Epoch seconds before which the trigger does not look (see ``not_before()``).
    """

    ended_states = FINISHED_STATES

    def __init__(
        self,
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int,
        poll_interval: float = 1.0,
        not_before: float = 0.0,
    ) -> None:
        super().__init__(
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            poll_interval=poll_interval,
            not_before=not_before,
        )

    def read_state(self) -> str | None:
        i = self.identity
        return task_state(i["dag_id"], i["run_id"], i["task_id"], i["map_index"])


#: DAG run states after which a run does not go on without a clear.
RUN_ENDED_STATES = frozenset({"success", "failed"})


def dag_run_state(dag_id: str, run_id: str) -> str | None:
    """A DAG run's state (works in a worker and the triggerer)."""
    return compat_dag_run_state(dag_id=dag_id, run_id=run_id)


class DagRunEndedTrigger(_PollingTrigger):
    """Fires once the DAG run ``(dag_id, run_id)`` has ended (success or failed).

    What a sub-flow step defers on while the child flow's run goes on (``operators/subflow.py``);
    the event is ``{"state": "success" | "failed"}``. The step then reads the child's flow status
    and result from the child's ``flow_result`` task.

    :param dag_id: The DAG of the run.
    :param run_id: The run.
    :param poll_interval: Seconds between two reads of the run's state.
    :param not_before: Epoch seconds before which the trigger does not look (see ``not_before()``).
    """

    ended_states = RUN_ENDED_STATES

    def __init__(
        self, *, dag_id: str, run_id: str, poll_interval: float = 2.0, not_before: float = 0.0
    ) -> None:
        super().__init__(dag_id=dag_id, run_id=run_id, poll_interval=poll_interval, not_before=not_before)

    def read_state(self) -> str | None:
        return dag_run_state(self.identity["dag_id"], self.identity["run_id"])
