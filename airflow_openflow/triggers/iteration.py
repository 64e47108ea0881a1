"""Waits until the previous iteration of a sequential loop on tasks has finished."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

#: Task states after which a task instance will not run again without a clear.
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def task_state(dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The state of one task instance, through the Task SDK (works in a worker and the triggerer)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    states = RuntimeTaskInstance.get_task_states(
        dag_id=dag_id, map_index=map_index, task_ids=[task_id], run_ids=[run_id]
    )
    state = states.get(run_id, {}).get(f"{task_id}_{map_index}")
    return str(state) if state is not None else None


class TaskFinishedTrigger(BaseTrigger):
    """Fires once the task instance ``(task_id, map_index)`` of the run is in a finished state.

    Polls through the Execution API every ``poll_interval`` seconds: Airflow has no event for
    "another task instance finished" a trigger could await.
    """

    def __init__(
        self, *, dag_id: str, run_id: str, task_id: str, map_index: int, poll_interval: float = 1.0
    ) -> None:
        super().__init__()
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_id = task_id
        self.map_index = map_index
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "dag_id": self.dag_id,
                "run_id": self.run_id,
                "task_id": self.task_id,
                "map_index": self.map_index,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        lookup = sync_to_async(task_state)
        while True:
            state = await lookup(self.dag_id, self.run_id, self.task_id, self.map_index)
            if state in FINISHED_STATES:
                yield TriggerEvent({"state": state})
                return
            await asyncio.sleep(self.poll_interval)
