"""triggers/waits.py: what the triggerer stores and runs, with the state readers replaced by fakes
(no triggerer, no Execution API)."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_openflow.triggers import waits
from airflow_openflow.triggers.waits import DagRunEndedTrigger, TaskFinishedTrigger

TASK_KWARGS = {
    "dag_id": "f__loop",
    "run_id": "manual__2026-01-01T00:00:00+00:00",
    "task_id": "l_iterations.b2",
    "map_index": 3,
    "poll_interval": 0.01,
    "not_before": 1234.5,
}
RUN_KWARGS = {"dag_id": "child", "run_id": "openflow__p__r__s__1", "poll_interval": 0.01, "not_before": 0.0}


def import_string(classpath: str) -> Any:
    """What the triggerer does with a stored classpath (Airflow's own helper is internal)."""
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _reconstructed(trigger: BaseTrigger) -> BaseTrigger:
    """What the triggerer does with a stored trigger: import its classpath, call it with its kwargs."""
    classpath, kwargs = trigger.serialize()
    return import_string(classpath)(**kwargs)


@pytest.mark.parametrize(
    ("cls", "kwargs"), [(TaskFinishedTrigger, TASK_KWARGS), (DagRunEndedTrigger, RUN_KWARGS)]
)
def test_serialize_round_trips(cls: type[BaseTrigger], kwargs: dict[str, Any]) -> None:
    trigger = cls(**kwargs)
    classpath, stored = trigger.serialize()
    assert classpath == f"airflow_openflow.triggers.waits.{cls.__name__}"
    assert stored == kwargs  # exactly the constructor's arguments: what deferred tasks have stored
    again = _reconstructed(trigger)
    assert type(again) is cls and again.serialize() == (classpath, stored)


def test_the_defaults_are_serialized_too() -> None:
    _, stored = TaskFinishedTrigger(dag_id="d", run_id="r", task_id="t", map_index=0).serialize()
    assert stored["poll_interval"] == 1.0 and stored["not_before"] == 0.0
    _, stored = DagRunEndedTrigger(dag_id="d", run_id="r").serialize()
    assert stored["poll_interval"] == 2.0 and stored["not_before"] == 0.0


def test_the_former_module_path_still_names_the_same_triggers() -> None:
    """Deferred tasks serialized by an earlier release name ``triggers.iteration``."""
    from airflow_openflow.triggers import iteration

    assert iteration.TaskFinishedTrigger is TaskFinishedTrigger
    assert iteration.DagRunEndedTrigger is DagRunEndedTrigger
    assert iteration.FINISHED_STATES is waits.FINISHED_STATES
    old = import_string("airflow_openflow.triggers.iteration.TaskFinishedTrigger")(**TASK_KWARGS)
    assert old.serialize() == TaskFinishedTrigger(**TASK_KWARGS).serialize()


def _events(trigger: BaseTrigger) -> list[TriggerEvent]:
    async def collect() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=10))


class _States:
    """A state reader that answers from a script, then repeats its last answer; records its calls."""

    def __init__(self, *states: str | None) -> None:
        self.script: Iterator[str | None] = iter(states)
        self.last: str | None = None
        self.calls: list[tuple[float, tuple[Any, ...]]] = []

    def __call__(self, *args: Any) -> str | None:
        self.calls.append((time.time(), args))
        self.last = next(self.script, self.last)
        return self.last


def test_task_finished_fires_once_when_the_task_has_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    states = _States(None, "queued", "running", "up_for_retry", "success")
    monkeypatch.setattr(waits, "task_state", states)
    trigger = TaskFinishedTrigger(**{**TASK_KWARGS, "not_before": 0.0})
    events = _events(trigger)
    assert events == [TriggerEvent({"state": "success"})]
    assert len(states.calls) == 5  # polled until the finished state, not after it
    assert {args for _, args in states.calls} == {
        ("f__loop", "manual__2026-01-01T00:00:00+00:00", "l_iterations.b2", 3)
    }


@pytest.mark.parametrize("state", sorted(waits.FINISHED_STATES))
def test_every_finished_state_ends_the_wait(monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    monkeypatch.setattr(waits, "task_state", _States(state))
    trigger = TaskFinishedTrigger(dag_id="d", run_id="r", task_id="t", map_index=0, poll_interval=0.01)
    assert _events(trigger) == [TriggerEvent({"state": state})]


def test_dag_run_ended_fires_once_when_the_run_has_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    states = _States("queued", "running", "failed")
    monkeypatch.setattr(waits, "dag_run_state", states)
    events = _events(DagRunEndedTrigger(**RUN_KWARGS))
    assert events == [TriggerEvent({"state": "failed"})]
    assert [args for _, args in states.calls] == [("child", "openflow__p__r__s__1")] * 3


def test_dag_run_ended_fires_on_success_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waits, "dag_run_state", _States("success"))
    assert _events(DagRunEndedTrigger(**RUN_KWARGS)) == [TriggerEvent({"state": "success"})]


@pytest.mark.parametrize(
    ("cls", "reader", "kwargs"),
    [(TaskFinishedTrigger, "task_state", TASK_KWARGS), (DagRunEndedTrigger, "dag_run_state", RUN_KWARGS)],
)
def test_nothing_is_read_nor_fired_before_not_before(
    monkeypatch: pytest.MonkeyPatch, cls: type[BaseTrigger], reader: str, kwargs: dict[str, Any]
) -> None:
    """The state has ended from the start: the trigger still waits until ``not_before``
    (apache/airflow#72716, see the module's docstring)."""
    states = _States("success")
    monkeypatch.setattr(waits, reader, states)
    until = time.time() + 0.3
    events = _events(cls(**{**kwargs, "not_before": until}))
    assert events == [TriggerEvent({"state": "success"})]
    assert states.calls and states.calls[0][0] >= until


@pytest.mark.parametrize(
    "executor",
    [
        None,
        "",
        "LocalExecutor",
        "airflow.executors.local_executor.LocalExecutor",
        "KubernetesExecutor",
        "LocalExecutor,CeleryExecutor",  # the first entry is the default
        "my_celery",  # an alias this module cannot resolve: the safe side
    ],
)
def test_a_resume_waits_settle_seconds_under_the_executors_of_the_race(executor: str | None) -> None:
    before = time.time()
    moment = waits.not_before(executor)
    assert before + waits.SETTLE_S <= moment <= time.time() + waits.SETTLE_S
    assert not waits.resumes_safely(executor)


@pytest.mark.parametrize(
    "executor",
    [
        "CeleryExecutor",
        "airflow.providers.celery.executors.celery_executor.CeleryExecutor",
        "celery:airflow.providers.celery.executors.celery_executor.CeleryExecutor",
        "CeleryExecutor, LocalExecutor",
        "airflow_openflow.compat.local_executor.RunnerLocalExecutor",
    ],
)
def test_a_resume_is_at_once_under_the_executors_that_keep_it_safe(executor: str) -> None:
    assert waits.resumes_safely(executor)
    assert waits.not_before(executor) == 0.0


class _TaskInstance:
    """What the triggerer attaches to a trigger: the task instance it runs for."""

    def __init__(self, map_index: int) -> None:
        self.dag_id, self.run_id, self.map_index = "f__loop", "r1", map_index
        self.task_id = "l_iterations.b0"


def _earlier(map_index: int, window: int | None = 1) -> waits.EarlierIterationTrigger:
    trigger = waits.EarlierIterationTrigger(
        last_task_id="l_iterations.b2", items_task_id="l_items", window=window, poll_interval=0.01
    )
    trigger.task_instance = _TaskInstance(map_index)  # type: ignore[assignment]
    return trigger


class _MappedStates:
    """Answers the states of every iteration from a script of snapshots; records each read."""

    def __init__(self, *snapshots: dict[int, str]) -> None:
        self.script = iter(snapshots)
        self.last: dict[int, str] = {}
        self.reads: list[tuple[str, str, str]] = []

    def __call__(self, dag_id: str, run_id: str, task_id: str) -> dict[int, str]:
        self.reads.append((dag_id, run_id, task_id))
        self.last = next(self.script, self.last)
        return self.last


def test_earlier_iteration_serializes_its_constructor_arguments() -> None:
    trigger = waits.EarlierIterationTrigger(last_task_id="g.b", items_task_id="l_items", window=None)
    classpath, stored = trigger.serialize()
    assert classpath == "airflow_openflow.triggers.waits.EarlierIterationTrigger"
    assert stored == {
        "last_task_id": "g.b",
        "items_task_id": "l_items",
        "window": None,
        "poll_interval": 0.25,
    }
    assert _reconstructed(trigger).serialize() == (classpath, stored)


def test_the_first_iteration_fires_at_once_without_reading_any_state(monkeypatch: pytest.MonkeyPatch) -> None:
    states = _MappedStates({})
    monkeypatch.setattr(waits, "mapped_states", states)
    assert _events(_earlier(0)) == [TriggerEvent({"previous": None, "state": None})]
    assert states.reads == []


def test_an_iteration_fires_when_the_one_before_has_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    states = _MappedStates({1: "running"}, {1: "running", 2: "queued"}, {1: "up_for_retry"}, {1: "failed"})
    monkeypatch.setattr(waits, "mapped_states", states)
    assert _events(_earlier(2)) == [TriggerEvent({"previous": 1, "state": "failed"})]
    assert states.reads == [("f__loop", "r1", "l_iterations.b2")] * 4  # not after the end


def test_a_parallelism_window_is_read_from_the_items_task(monkeypatch: pytest.MonkeyPatch) -> None:
    pulled: list[tuple[str, ...]] = []

    def xcom(dag_id: str, run_id: str, task_id: str, key: str) -> int:
        pulled.append((dag_id, run_id, task_id, key))
        return 3

    monkeypatch.setattr(waits, "xcom_value", xcom)
    monkeypatch.setattr(waits, "mapped_states", _MappedStates({1: "success"}))
    assert _events(_earlier(4, window=None)) == [TriggerEvent({"previous": 1, "state": "success"})]
    assert _events(_earlier(2, window=None)) == [TriggerEvent({"previous": None, "state": None})]
    assert pulled == [("f__loop", "r1", "l_items", "openflow_parallelism")] * 2


def test_the_waiting_iterations_of_a_run_share_one_read_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten iterations wait at once (as a loop's triggers do in one triggerer): each poll reads the
    states once for all of them, and each fires when its own predecessor has finished."""
    snapshots = [{k: "success" for k in range(done)} for done in range(11)]
    states = _MappedStates(*snapshots)
    monkeypatch.setattr(waits, "mapped_states", states)
    triggers = [_earlier(i) for i in range(1, 11)]

    async def all_events() -> list[list[TriggerEvent]]:
        async def one(trigger: BaseTrigger) -> list[TriggerEvent]:
            return [event async for event in trigger.run()]

        return await asyncio.wait_for(asyncio.gather(*(one(t) for t in triggers)), timeout=10)

    events = asyncio.run(all_events())
    assert events == [[TriggerEvent({"previous": i, "state": "success"})] for i in range(10)]
    assert len(states.reads) < 3 * len(snapshots)  # about one read per snapshot, not one per trigger
    assert waits._MappedTaskStates._shared == {}  # nothing kept once nobody waits


def test_a_child_flow_that_succeeded_ends_the_step_at_once_with_its_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No worker resumes the step (so no floor): the trigger pushes what the step would."""
    from airflow.triggers.base import TaskSuccessEvent

    monkeypatch.setattr(waits, "dag_run_state", _States("running", "success"))
    pulled: list[tuple[str, ...]] = []

    def xcom(dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        pulled.append((dag_id, run_id, task_id, key))
        return {"openflow_status": "success", "return_value": {"doubled": 4}}[key]

    monkeypatch.setattr(waits, "xcom_value", xcom)
    pushed: list[tuple[Any, ...]] = []
    monkeypatch.setattr(waits, "set_xcom", lambda *args: pushed.append(args))
    trigger = DagRunEndedTrigger(
        **{**RUN_KWARGS, "not_before": time.time() + 60}, result_task_id="flow_result", end_on_success=True
    )
    trigger.task_instance = _TaskInstance(-1)  # type: ignore[assignment]
    started = time.monotonic()
    (event,) = _events(trigger)
    assert time.monotonic() - started < 5  # not_before applies to a resume only
    assert isinstance(event, TaskSuccessEvent)
    step = ("f__loop", "r1", "l_iterations.b0", -1)  # the step's task instance: what it would push
    assert pushed == [(*step, "return_value", {"doubled": 4}), (*step, "openflow_outcome", "success")]
    assert [key for *_, key in pulled] == ["openflow_status", "return_value"]
    assert {p[:3] for p in pulled} == {("child", "openflow__p__r__s__1", "flow_result")}
    assert _reconstructed(trigger).serialize() == trigger.serialize()


def test_a_rule_to_evaluate_resumes_the_step_after_not_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed child when a ``retry_if`` must decide (``end_on_failure`` None): the step resumes
    in a worker, no sooner than ``not_before``."""
    monkeypatch.setattr(waits, "dag_run_state", _States("failed"))
    monkeypatch.setattr(waits, "xcom_value", lambda *args: "failure")
    until = time.time() + 0.3
    trigger = DagRunEndedTrigger(**{**RUN_KWARGS, "not_before": until}, result_task_id="flow_result")
    trigger.task_instance = _TaskInstance(-1)  # type: ignore[assignment]
    assert _events(trigger) == [TriggerEvent({"state": "failed"})]
    assert time.time() >= until


@pytest.mark.parametrize(
    ("end_on_failure", "status", "outcome", "event_name"),
    [
        ("fail", "failure", "failed", "TaskFailedEvent"),
        ("continue", "failure", "continued_error", "TaskSuccessEvent"),
        ("fail", None, "failed", "TaskFailedEvent"),  # the child ended without a flow result
    ],
)
def test_a_failed_child_ends_the_step_as_its_rules_say(
    monkeypatch: pytest.MonkeyPatch, end_on_failure: str, status: str | None, outcome: str, event_name: str
) -> None:
    monkeypatch.setattr(waits, "dag_run_state", _States("failed"))
    error = {"error": {"name": "ValueError", "message": "negative"}}
    monkeypatch.setattr(
        waits, "xcom_value", lambda *a: {"openflow_status": status, "return_value": error}[a[-1]]
    )
    pushed: list[tuple[Any, ...]] = []
    monkeypatch.setattr(waits, "set_xcom", lambda *args: pushed.append(args))
    trigger = DagRunEndedTrigger(
        **{**RUN_KWARGS, "not_before": time.time() + 60},
        result_task_id="flow_result",
        end_on_failure=end_on_failure,
    )
    trigger.task_instance = _TaskInstance(-1)  # type: ignore[assignment]
    (event,) = _events(trigger)
    assert type(event).__name__ == event_name
    result = error if status else waits.child_did_not_complete("child", "openflow__p__r__s__1")
    step = ("f__loop", "r1", "l_iterations.b0", -1)
    assert pushed == [(*step, "return_value", result), (*step, "openflow_outcome", outcome)]


def _rules(**changes: Any) -> dict[str, Any]:
    """A sub-flow step's rules as the operator stores them with the trigger."""
    from airflow_openflow.runtime.deferred_rules import DeferredRules

    rules = DeferredRules(
        stop_after_if="result.doubled > flow_input.limit + results.a",
        retry_if=None,
        flow_input={"limit": 100},
        previous_result=None,
        flow_env={},
        extra={},
        readable_step_ids=("a",),
    )
    stored = dataclasses.replace(rules, **changes).stored()
    assert stored is not None
    return stored


def _child_ended(
    monkeypatch: pytest.MonkeyPatch, status: str, result: Any, rules: dict[str, Any]
) -> tuple[list[TriggerEvent], list[tuple[Any, ...]], float]:
    """The events of a sub-flow step's trigger (a resume must wait 0.5 s) once its child ended with
    ``status`` and ``result``; the step's run has one earlier step, ``a``, whose result is 1."""
    monkeypatch.setattr(waits, "dag_run_state", _States("success" if status == "success" else "failed"))

    def xcom(dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        if dag_id == "child":
            return {"openflow_status": status, "return_value": result}[key]
        assert (dag_id, run_id, task_id, key) == ("f__loop", "r1", "a", "return_value")
        return 1

    monkeypatch.setattr(waits, "xcom_value", xcom)
    pushed: list[tuple[Any, ...]] = []
    monkeypatch.setattr(waits, "set_xcom", lambda *args: pushed.append(args))
    until = time.time() + 0.5
    trigger = DagRunEndedTrigger(
        **{**RUN_KWARGS, "not_before": until}, result_task_id="flow_result", rules=rules
    )
    trigger.task_instance = _TaskInstance(-1)  # type: ignore[assignment]
    assert _reconstructed(trigger).serialize() == trigger.serialize()  # what the triggerer stores
    started = time.time()
    events = _events(trigger)
    return events, pushed, time.time() - started


def test_a_false_stop_after_if_ends_the_step_where_it_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """No resume in a worker, so no wait: the step ends with the child's result, as the worker
    would have ended it (the rule reads the flow input and an earlier step's result)."""
    from airflow.triggers.base import TaskSuccessEvent

    events, pushed, took = _child_ended(monkeypatch, "success", {"doubled": 100}, _rules())
    assert [type(e) for e in events] == [TaskSuccessEvent] and took < 0.5
    step = ("f__loop", "r1", "l_iterations.b0", -1)
    assert pushed == [(*step, "return_value", {"doubled": 100}), (*step, "openflow_outcome", "success")]


@pytest.mark.parametrize(
    "rule",
    [
        "result.doubled > flow_input.limit + results.a",  # true: a stop, the worker skips the rest
        "result.nothing.here",  # throws: the worker's handling of a failing predicate applies
        "variable('u/me/missing') == 'x'",  # a value the triggerer cannot give: the worker answers
    ],
)
def test_a_stop_or_a_rule_not_answered_resumes_the_step_in_a_worker_after_the_wait(
    monkeypatch: pytest.MonkeyPatch, rule: str
) -> None:
    monkeypatch.setattr("airflow_openflow.runtime.connections.get_variable", _raises)
    events, pushed, took = _child_ended(monkeypatch, "success", {"doubled": 500}, _rules(stop_after_if=rule))
    assert events == [TriggerEvent({"state": "success"})] and pushed == [] and took >= 0.45


def test_a_true_retry_if_fails_the_step_for_airflow_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.triggers.base import TaskFailedEvent

    error = {"error": {"name": "TimeoutError", "message": "slow"}}
    rules = _rules(
        stop_after_if=None,
        retry_if="result.error.name == 'TimeoutError' && previous_result == 7",
        previous_result=7,
    )
    events, pushed, took = _child_ended(monkeypatch, "failure", error, rules)
    assert [type(e) for e in events] == [TaskFailedEvent] and took < 0.5
    step = ("f__loop", "r1", "l_iterations.b0", -1)
    assert pushed == [(*step, "return_value", error), (*step, "openflow_outcome", "failed")]

    false_rules = _rules(stop_after_if=None, retry_if="result.error.name == 'ValueError'")
    events, pushed, took = _child_ended(monkeypatch, "failure", error, false_rules)
    assert events == [TriggerEvent({"state": "failed"})] and pushed == [] and took >= 0.45  # no retry


def _raises(path: str) -> Any:
    raise RuntimeError("no variables here")


def test_rules_too_large_to_store_are_left_to_the_worker() -> None:
    from airflow_openflow.runtime.deferred_rules import MAX_STORED_BYTES, DeferredRules

    rules = DeferredRules("true", None, {"big": "x" * MAX_STORED_BYTES}, None, {}, {}, ())
    assert rules.stored() is None
    assert DeferredRules("true", None, {"n": float("nan")}, None, {}, {}, ()).stored() is None  # not JSON
