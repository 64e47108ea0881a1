"""Triggers our deferred tasks wait on: an earlier loop iteration finished, a sub-flow's child
run ended; and the one the previous releases deferred on (``TaskFinishedTrigger``).

Airflow 3.3.2 fails a deferred task resumed in a worker when its trigger fired before the scheduler
had processed the exit of the workload that deferred it ("finished with state success, but the
task instance's state attribute is running", apache/airflow#72716, open). So:
- a loop iteration's first step starts in the triggerer (``EarlierIterationTrigger``): no
  workload ran before it deferred, and its trigger fires as soon as it may;
- a sub-flow step is ended by its trigger (``DagRunEndedTrigger``) where its rules need no
  expression, no worker resumes it; a ``stop_after_if`` or ``retry_if`` to evaluate resumes it in
  a worker: at once under an executor that keeps the resumed task instance safe
  (``resumes_safely``), else no sooner than ``not_before`` = the deferral + ``SETTLE_S``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskFailedEvent, TaskSuccessEvent, TriggerEvent

from airflow_openflow.compat.task_sdk import dag_run_state as compat_dag_run_state
from airflow_openflow.compat.task_sdk import mapped_task_states as compat_mapped_task_states
from airflow_openflow.compat.task_sdk import set_xcom as compat_set_xcom
from airflow_openflow.compat.task_sdk import task_states as compat_task_state
from airflow_openflow.compat.task_sdk import xcom_value as compat_xcom_value

#: Task states after which a task instance will not run again without a clear.
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def task_state(dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The state of one task instance (works in a worker and the triggerer)."""
    return compat_task_state(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)


def mapped_states(dag_id: str, run_id: str, task_id: str) -> dict[int, str]:
    """The states of a mapped task's instances, by map index (works in the triggerer)."""
    return compat_mapped_task_states(dag_id=dag_id, run_id=run_id, task_id=task_id)


def xcom_value(dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    """An XCom of an unmapped task (works in the triggerer)."""
    return compat_xcom_value(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key)


def set_xcom(dag_id: str, run_id: str, task_id: str, map_index: int, key: str, value: Any) -> None:
    """Store an XCom of a task instance (works in the triggerer)."""
    compat_set_xcom(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, key=key, value=value)


#: Seconds after a deferral from a worker before a trigger resumes the task in a worker.
SETTLE_S = 10.0

#: Executors under which a task resumed in a worker cannot be failed by the late end report of the
#: workload that deferred it. The CeleryExecutor reads a workload's report only while it is its
#: task instance's newest (the resumed workload replaces the one that deferred; a report read
#: before, while the task instance is scheduled, is known stale: Airflow 3.3.2's own guard), and
#: ``run_flow``'s executor holds a resumed task instance back until that report has been read
#: (``compat/local_executor.py``). The LocalExecutor of a deployment (#72716), and executors not
#: checked (Kubernetes, Edge, aliases), keep the wait.
RESUME_SAFE_EXECUTORS = frozenset({"CeleryExecutor", "RunnerLocalExecutor"})


def resumes_safely(executor: str | None) -> bool:
    """Whether a task run by ``executor`` may be resumed in a worker as soon as its trigger fires.

    ``executor``: as configured (``[core] executor``, whose first entry is the default, or a task's
    own ``executor``): a class name, a class path, or ``alias:class.path``."""
    if not executor:
        return False
    default = executor.split(",", 1)[0].strip()
    class_path = default.rsplit(":", 1)[-1]
    return class_path.rsplit(".", 1)[-1] in RESUME_SAFE_EXECUTORS


def not_before(executor: str | None = None) -> float:
    """When a deferral that starts now may end in a worker at the earliest (epoch seconds; 0: at
    once) for a task run by ``executor`` (see ``resumes_safely``)."""
    return 0.0 if resumes_safely(executor) else time.time() + SETTLE_S


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

    What the first step of a loop iteration deferred on in earlier releases (now it starts on
    ``EarlierIterationTrigger``); kept so that tasks deferred on it resume. The event is
    ``{"state": <that task instance's state>}``, one of ``FINISHED_STATES``.

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


class _MappedTaskStates:
    """The states of one mapped task's instances in one run, read at most once per ``max_age``
    seconds for all the triggers of this triggerer that wait on them (a loop of N iterations has
    N - 1 waiting triggers, polling one request at a time rather than N)."""

    _shared: dict[tuple[str, str, str], _MappedTaskStates] = {}

    def __init__(self, dag_id: str, run_id: str, task_id: str) -> None:
        self.key = (dag_id, run_id, task_id)
        self.identity = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id}
        self.states: dict[int, str] = {}
        self.read_at = float("-inf")
        self.users = 0
        self.lock: asyncio.Lock | None = None

    @classmethod
    def of(cls, dag_id: str, run_id: str, task_id: str) -> _MappedTaskStates:
        key = (dag_id, run_id, task_id)
        shared = cls._shared.get(key)
        if shared is None:
            shared = cls._shared[key] = cls(dag_id, run_id, task_id)
        return shared

    async def wait_until_finished(self, map_index: int, poll_interval: float) -> str:
        """The state of instance ``map_index`` once it is in one of ``FINISHED_STATES``."""
        from asgiref.sync import sync_to_async

        if self.lock is None:
            self.lock = asyncio.Lock()
        lock = self.lock
        self.users += 1
        try:
            while True:
                async with lock:  # one read in flight; the triggers queued behind it reuse it
                    if time.monotonic() - self.read_at >= poll_interval:
                        self.states = await sync_to_async(mapped_states)(**self.identity)
                        self.read_at = time.monotonic()
                    state = self.states.get(map_index)
                if state in FINISHED_STATES:
                    return state
                await asyncio.sleep(poll_interval)
        finally:
            self.users -= 1
            if not self.users:
                self._shared.pop(self.key, None)


class EarlierIterationTrigger(BaseTrigger):
    """Fires once the loop iteration that this task instance's iteration waits for has finished.

    What the first step of a gated loop body *starts* on (``start_from_trigger``, set by
    ``compile/body.py``): iteration i of a sequential loop waits for iteration i - 1, of a parallel
    loop with a ``parallelism`` w for iteration i - w; earlier iterations fire at once. The task
    instance (its run and map index) is the one the triggerer attaches to the trigger.

    No floor is needed (unlike ``TaskFinishedTrigger``): a task that starts in the triggerer ran no
    workload before its deferral, so there is no workload exit the scheduler could still be about
    to process when the resumed task runs (the race of apache/airflow#72716).

    The event is ``{"previous": <map index waited for, or None>, "state": <its state, or None>}``.

    :param last_task_id: The body's last task: an iteration has finished when its instance has.
    :param items_task_id: The task that evaluated the loop's items (and its ``parallelism``).
    :param window: How many iterations run at once: 1 for a sequential loop, a static
        ``parallelism``, or None to read the evaluated ``parallelism`` from ``items_task_id``.
    :param poll_interval: Seconds between two reads of the body's last task's states.
    """

    def __init__(
        self, *, last_task_id: str, items_task_id: str, window: int | None, poll_interval: float = 0.25
    ) -> None:
        super().__init__()
        self.last_task_id = last_task_id
        self.items_task_id = items_task_id
        self.window = window
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "last_task_id": self.last_task_id,
            "items_task_id": self.items_task_id,
            "window": self.window,
            "poll_interval": self.poll_interval,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        if ti is None:
            raise RuntimeError("EarlierIterationTrigger runs for a task instance only")
        previous = ti.map_index - await self._window(ti.dag_id, ti.run_id)
        if previous < 0:
            yield TriggerEvent({"previous": None, "state": None})
            return
        waited = _MappedTaskStates.of(ti.dag_id, ti.run_id, self.last_task_id)
        state = await waited.wait_until_finished(previous, self.poll_interval)
        yield TriggerEvent({"previous": previous, "state": state})

    async def _window(self, dag_id: str, run_id: str) -> int:
        if self.window is not None:
            return self.window
        from asgiref.sync import sync_to_async

        from airflow_openflow.runtime.plan import PARALLELISM_KEY

        width = await sync_to_async(xcom_value)(dag_id, run_id, self.items_task_id, PARALLELISM_KEY)
        # No evaluated width (the items task pushes one for every gated parallel loop): no cap.
        return width if isinstance(width, int) and width >= 1 else 1 << 30


#: DAG run states after which a run does not go on without a clear.
RUN_ENDED_STATES = frozenset({"success", "failed"})


def dag_run_state(dag_id: str, run_id: str) -> str | None:
    """A DAG run's state (works in a worker and the triggerer)."""
    return compat_dag_run_state(dag_id=dag_id, run_id=run_id)


class DagRunEndedTrigger(_PollingTrigger):
    """Fires once the DAG run ``(dag_id, run_id)`` has ended (success or failed).

    What a sub-flow step defers on while the child flow's run goes on (``operators/subflow.py``).

    With ``result_task_id`` (the child's ``flow_result`` task), the trigger reads the child's flow
    status and result and, where the step's rules need no expression, ends the step itself, at
    once, recording what the step would (its result and outcome): no worker resumes it.
    ``end_on_success``: a child that succeeded ends the step with its result (a step without
    ``stop_after_if``). ``end_on_failure``: a child that failed ends the step failed (``"fail"``:
    Airflow retries it while the step's ``retry`` has attempts left) or successful with the error
    object as its result (``"continue"``: ``continue_on_error`` on the last attempt); None when a
    ``retry_if`` must be evaluated. Otherwise the event is ``{"state": "success" | "failed"}`` and
    the step resumes in a worker, which applies its rules: that event fires no sooner than
    ``not_before`` (apache/airflow#72716, the module's docstring), unless ``rules`` (a
    ``DeferredRules``, stored) answer the rule here in a way that lets the flow go on: a false
    ``stop_after_if`` ends the step with the child's result, a true ``retry_if`` ends it failed for
    Airflow to retry (runtime/deferred_rules.py).

    :param dag_id: The DAG of the run.
    :param run_id: The run.
    :param poll_interval: Seconds between two reads of the run's state.
    :param not_before: Epoch seconds before which the step is not resumed in a worker (see
        ``not_before()``).
    :param result_task_id: The child DAG's final task, whose XComs hold the child's flow status
        and result; None: always resume the step in a worker.
    :param end_on_success: Whether a child that succeeded ends the step here.
    :param end_on_failure: ``"fail"``, ``"continue"`` or None (see above).
    :param rules: The step's rules and the values they read, to answer them here (see above).
    """

    ended_states = RUN_ENDED_STATES

    def __init__(
        self,
        *,
        dag_id: str,
        run_id: str,
        poll_interval: float = 2.0,
        not_before: float = 0.0,
        result_task_id: str | None = None,
        end_on_success: bool = False,
        end_on_failure: str | None = None,
        rules: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(dag_id=dag_id, run_id=run_id, poll_interval=poll_interval, not_before=not_before)
        self.result_task_id = result_task_id
        self.end_on_success = end_on_success
        self.end_on_failure = end_on_failure
        self.rules = rules

    def serialize(self) -> tuple[str, dict[str, Any]]:
        classpath, kwargs = super().serialize()
        if self.result_task_id is not None:  # absent from what earlier releases stored
            kwargs["result_task_id"] = self.result_task_id
            kwargs["end_on_success"] = self.end_on_success
            kwargs["end_on_failure"] = self.end_on_failure
        if self.rules is not None:
            kwargs["rules"] = self.rules
        return classpath, kwargs

    def read_state(self) -> str | None:
        return dag_run_state(self.identity["dag_id"], self.identity["run_id"])

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.result_task_id is None or self.task_instance is None:
            async for event in super().run():
                yield event
            return
        from asgiref.sync import sync_to_async

        from airflow_openflow.runtime.outcomes import OutcomeKind
        from airflow_openflow.runtime.plan import OUTCOME_KEY, STATUS_KEY

        lookup = sync_to_async(self.read_state)
        while (state := await lookup()) not in self.ended_states:
            await asyncio.sleep(self.poll_interval)
        dag_id, run_id = self.identity["dag_id"], self.identity["run_id"]
        pull = sync_to_async(xcom_value)
        status = await pull(dag_id, run_id, self.result_task_id, STATUS_KEY)
        result = await pull(dag_id, run_id, self.result_task_id, "return_value")
        if status not in ("success", "failure"):
            status, result = "failure", child_did_not_complete(dag_id, run_id)
        if status == "success" and self.end_on_success:
            kind, event = OutcomeKind.SUCCESS, TaskSuccessEvent()
        elif status == "failure" and self.end_on_failure == "continue":
            kind, event = OutcomeKind.CONTINUED_ERROR, TaskSuccessEvent()
        elif status == "failure" and self.end_on_failure == "fail":
            kind, event = OutcomeKind.FAILED, TaskFailedEvent()
        elif await sync_to_async(self._rule_lets_flow_go_on)(status == "success", result):
            kind = OutcomeKind.SUCCESS if status == "success" else OutcomeKind.FAILED
            event = TaskSuccessEvent() if status == "success" else TaskFailedEvent()
        else:
            left = self.not_before - time.time()
            if left > 0:
                self.log.info(
                    "sub-flow run %s: flow %s; the step resumes in a worker in %.1f s", run_id, status, left
                )
            await _settle(self.not_before)
            yield TriggerEvent({"state": state})
            return
        self.log.info("sub-flow run %s of %s: flow %s; the step ends here (%s)", run_id, dag_id, status, kind)
        step = self.task_instance
        push = sync_to_async(set_xcom)
        where = (step.dag_id, step.run_id, step.task_id, step.map_index)
        await push(*where, "return_value", result)  # what the step itself records (finish())
        await push(*where, OUTCOME_KEY, kind.value)
        yield event

    def _rule_lets_flow_go_on(self, succeeded: bool, result: Any) -> bool:
        """The step's rule answered here (``runtime/deferred_rules.py``); False without rules."""
        if self.rules is None or self.task_instance is None:
            return False
        from airflow_openflow.runtime.connections import get_resource, get_variable
        from airflow_openflow.runtime.deferred_rules import DeferredRules, flow_goes_on

        step = self.task_instance
        goes_on = flow_goes_on(
            DeferredRules.from_stored(self.rules),
            succeeded=succeeded,
            result=result,
            read_result=lambda step_id: xcom_value(step.dag_id, step.run_id, step_id, "return_value"),
            variable=get_variable,
            resource=get_resource,
        )
        if goes_on:
            rule = "stop_after_if is false" if succeeded else "retry_if is true"
            self.log.info("sub-flow step: its %s, answered where it waits", rule)
        return goes_on


def child_did_not_complete(dag_id: str, run_id: str) -> dict[str, Any]:
    """The error a sub-flow step gets from a child run that ended without a flow result."""
    message = (
        f"run {run_id} of DAG {dag_id} ended without a flow result "
        "(its flow_result task did not run); see that run in Airflow"
    )
    return {"error": {"name": "SubFlowDidNotComplete", "message": message}}
