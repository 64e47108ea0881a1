"""operators/: ``execute`` with a fake ``context`` (no database, no scheduler).

The fake stands in for the public part of a running task that the operators use:
``context["ti"]`` (XCom push and pull, ids, try numbers) and ``context["dag_run"]`` (conf, who
started it). What needs more of Airflow stays with the integration tests: opening a HITL request
(``StepApprovalOperator.execute`` on a step that ran), triggering a child run
(``SubFlowRunOperator.execute``), the flow cache (Airflow Variables), the loop gate and skips of
``BodyStepOperator`` (the supervisor's task states and skip calls).
"""

from __future__ import annotations

import datetime
import time
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowSkipException,
    DownstreamTasksSkipped,
    TaskDeferred,
)

from airflow_openflow.compile import build_dag
from airflow_openflow.operators.step import StepFailed
from airflow_openflow.runtime.outcomes import OutcomeKind, StepOutcome
from airflow_openflow.runtime.plan import OUTCOME_KEY, RESUME_KEY, STATUS_KEY
from airflow_openflow.spec import load_flow

RUN_ID = "manual__2026-01-01T00:00:00+00:00"


class FakeTI:
    """``context["ti"]`` of one task: XComs in a store shared by the tasks of a test, keyed by
    (run id, task id, map index, key)."""

    def __init__(
        self,
        task_id: str,
        store: dict[tuple[str, str, int, str], Any] | None = None,
        *,
        dag_id: str = "x",
        run_id: str = RUN_ID,
        map_index: int = -1,
        try_number: int = 1,
        max_tries: int = 0,
    ) -> None:
        self.task_id, self.dag_id, self.run_id = task_id, dag_id, run_id
        self.map_index, self.try_number, self.max_tries = map_index, try_number, max_tries
        self.store = {} if store is None else store

    def set(
        self, task_id: str, key: str, value: Any, *, map_index: int = -1, run_id: str | None = None
    ) -> None:
        self.store[(run_id or self.run_id, task_id, map_index, key)] = value

    def pushed(self, key: str) -> Any:
        return self.store.get((self.run_id, self.task_id, self.map_index, key))

    def xcom_push(self, key: str, value: Any) -> None:
        self.set(self.task_id, key, value, map_index=self.map_index)

    def xcom_pull(
        self,
        task_ids: str | list[str] | None = None,
        key: str = "return_value",
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        map_indexes: int | None = None,
    ) -> Any:
        def one(task_id: str) -> Any:
            index = -1 if map_indexes is None else map_indexes
            return self.store.get((run_id or self.run_id, task_id, index, key))

        if task_ids is None:
            task_ids = self.task_id
        return one(task_ids) if isinstance(task_ids, str) else [one(t) for t in task_ids]


def context(ti: FakeTI, conf: dict[str, Any] | None = None, *, started_by: str = "starter") -> dict[str, Any]:
    dag_run = SimpleNamespace(
        conf=conf or {}, run_type="manual", triggering_user_name=started_by, run_id=ti.run_id, start_date=None
    )
    return {"ti": ti, "dag_run": dag_run, "params": {}}


def run(task: Any, store: dict[Any, Any], conf: dict[str, Any] | None = None, **ti: Any) -> Any:
    """Execute a task as a worker would: its return value becomes its ``return_value`` XCom."""
    fake = FakeTI(task.task_id, store, dag_id=task.dag_id, **ti)
    result = task.execute(context(fake, conf))
    fake.xcom_push("return_value", result)
    return result


def step(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "identity"}, **extra}


def dag_of(*modules: dict[str, Any], **value: Any) -> Any:
    return build_dag(
        load_flow({"summary": "S", "value": {"modules": list(modules), **value}}).flow, dag_id="x"
    )


ERROR = {"error": {"name": "Boom", "message": "bad"}}


# --- OpenFlowStepOperator: how a step's outcome ends its task ---------------------------------------


@pytest.mark.parametrize(
    ("kind", "retryable", "raised"),
    [
        (OutcomeKind.SKIPPED, True, AirflowSkipException),
        (OutcomeKind.CONTAINER_ENDED, True, AirflowSkipException),
        (OutcomeKind.STOPPED, True, DownstreamTasksSkipped),
        (OutcomeKind.STOPPED_SKIPPED, True, DownstreamTasksSkipped),
        (OutcomeKind.FAILED, True, StepFailed),  # Airflow retries it while retries are left
        (OutcomeKind.FAILED, False, AirflowFailException),
        (OutcomeKind.ERROR_STOP, True, AirflowFailException),
    ],
)
def test_an_outcome_that_ends_the_task_in_another_state(
    kind: OutcomeKind, retryable: bool, raised: type[BaseException]
) -> None:
    task = dag_of(step("a"), step("b")).task_dict["a"]
    ti = FakeTI("a")
    result = ERROR if kind in (OutcomeKind.FAILED, OutcomeKind.ERROR_STOP) else {"r": 1}
    with pytest.raises(raised) as ended:
        task.finish(context(ti), StepOutcome(kind, result, "why", retryable=retryable))
    assert ti.pushed(OUTCOME_KEY) == kind.value
    assert ti.pushed("return_value") == result  # pushed here: an exception skips Airflow's push
    if raised is DownstreamTasksSkipped:
        assert ended.value.tasks == ["b"]  # every later step, whatever its trigger rule
    if kind in (OutcomeKind.FAILED, OutcomeKind.ERROR_STOP):
        assert "step a failed: Boom: bad" in str(ended.value)


@pytest.mark.parametrize("kind", [OutcomeKind.SUCCESS, OutcomeKind.MOCKED, OutcomeKind.CONTINUED_ERROR])
def test_an_outcome_that_succeeds_returns_the_result(kind: OutcomeKind) -> None:
    task = dag_of(step("a"), step("b")).task_dict["a"]
    ti = FakeTI("a")
    assert task.finish(context(ti), StepOutcome(kind, {"r": 1})) == {"r": 1}
    assert ti.pushed(OUTCOME_KEY) == kind.value and ti.pushed("return_value") is None


def test_a_stop_at_the_last_step_has_nothing_to_skip() -> None:
    task = dag_of(step("a")).task_dict["a"]
    ti = FakeTI("a")
    assert task.finish(context(ti), StepOutcome(OutcomeKind.STOPPED, 7)) == 7
    assert ti.pushed(OUTCOME_KEY) == "stopped"


def test_a_linear_flow_of_identities_passes_its_input_to_the_flow_result() -> None:
    dag = dag_of(step("a"), step("b"))
    store: dict[Any, Any] = {}
    conf = {"n": 1}
    assert run(dag.task_dict["a"], store, conf) == {"n": 1}
    assert run(dag.task_dict["b"], store, conf) == {"n": 1}
    ti = FakeTI("flow_result", store)
    assert dag.task_dict["flow_result"].execute(context(ti, conf)) is None
    assert ti.pushed("return_value") == {"n": 1} and ti.pushed(STATUS_KEY) == "success"


def test_a_stop_after_if_skips_every_later_step() -> None:
    dag = dag_of(step("a", stop_after_if={"expr": "true"}), step("b"), step("c"))
    store: dict[Any, Any] = {}
    with pytest.raises(DownstreamTasksSkipped) as stopped:
        run(dag.task_dict["a"], store)
    assert stopped.value.tasks == ["b", "c"]
    ti = FakeTI("flow_result", store)
    dag.task_dict["flow_result"].execute(context(ti))  # the flow succeeds, stopped early
    assert ti.pushed(STATUS_KEY) == "success"


# --- FlowResultOperator: the flow's status is the run's state ---------------------------------------


def _flow_result(outcomes: dict[str, tuple[str | None, Any]], *modules: Any, **value: Any) -> Any:
    dag = dag_of(*(modules or [step(s) for s in outcomes]), **value)
    ti = FakeTI(dag.task_ids[-1])
    for task_id, (kind, result) in outcomes.items():
        ti.set(task_id, OUTCOME_KEY, kind)
        ti.set(task_id, "return_value", result)
    return dag.task_dict["flow_result"], ti


def test_a_failed_step_fails_the_flow_with_its_error() -> None:
    task, ti = _flow_result({"a": ("success", 1), "b": ("failed", ERROR)})
    with pytest.raises(AirflowFailException, match="flow failed: step 'b' failed"):
        task.execute(context(ti))
    assert ti.pushed("return_value") == ERROR and ti.pushed(STATUS_KEY) == "failure"


def test_a_step_that_never_finished_fails_the_flow() -> None:
    task, ti = _flow_result({"a": ("success", 1), "b": (None, None)})
    with pytest.raises(AirflowFailException):
        task.execute(context(ti))
    assert ti.pushed("return_value")["error"]["name"] == "StepDidNotComplete"


def test_a_stop_labelled_skipped_skips_the_flow_result() -> None:
    task, ti = _flow_result({"a": ("stopped_skipped", {"why": "quiet"}), "b": (None, None)})
    with pytest.raises(AirflowSkipException):
        task.execute(context(ti))
    assert ti.pushed(STATUS_KEY) == "success" and ti.pushed("return_value") == {"why": "quiet"}


@pytest.mark.parametrize(
    ("handled", "status"), [({"handled": True}, "failure"), ({"recover": True}, "success")]
)
def test_the_failure_module_result_is_the_flow_result(handled: dict[str, Any], status: str) -> None:
    task, ti = _flow_result(
        {"a": ("failed", ERROR), "failure": ("success", handled)}, step("a"), failure_module=step("failure")
    )
    assert task.failure_step_id == "failure"
    if status == "failure":
        with pytest.raises(AirflowFailException):
            task.execute(context(ti))
    else:
        task.execute(context(ti))
    assert ti.pushed("return_value") == handled and ti.pushed(STATUS_KEY) == status


def test_an_empty_flow_returns_its_input() -> None:
    task, ti = _flow_result({})
    task.execute(context(ti, {"x": 2}))
    assert ti.pushed("return_value") == {"x": 2} and ti.pushed(STATUS_KEY) == "success"


# --- PreprocessorOperator ----------------------------------------------------------------------------


def _preprocessor() -> Any:
    # A preprocessor is a script (an identity would be refused): it returns what it was given.
    preprocessor = {
        "id": "preprocessor",
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": "def main(event):\n    return {'event': event}\n",
            "input_transforms": {"event": {"type": "javascript", "expr": "flow_input.event"}},
        },
    }
    return dag_of(step("a"), preprocessor_module=preprocessor).task_dict["preprocessor"]


def test_the_preprocessor_skips_itself_for_a_run_without_a_trigger_event() -> None:
    ti = FakeTI("preprocessor")
    with pytest.raises(AirflowSkipException, match="not started by a trigger event"):
        _preprocessor().execute(context(ti, {"n": 1}))
    assert ti.pushed(OUTCOME_KEY) == "skipped"


def test_the_preprocessor_refuses_an_event_without_a_kind() -> None:
    ti = FakeTI("preprocessor")
    with pytest.raises(AirflowFailException):
        _preprocessor().execute(context(ti, {"__openflow_event": {"body": {}}}))
    assert ti.pushed("return_value")["error"]["name"] == "InvalidTriggerEvent"


def test_the_preprocessor_sees_the_event() -> None:
    event = {"kind": "webhook", "body": {"x": 1}}
    ti = FakeTI("preprocessor")
    assert _preprocessor().execute(context(ti, {"__openflow_event": event})) == {"event": event}
    assert ti.pushed(OUTCOME_KEY) == "success"


# --- FlowSleepOperator -------------------------------------------------------------------------------


def _sleep(value: Any) -> Any:
    return dag_of(step("a", sleep=value), step("b")).task_dict["a_sleep"]


def test_no_sleep_and_a_short_sleep_do_not_defer() -> None:
    assert _sleep({"type": "static", "value": 0}).execute(context(FakeTI("a_sleep"))) is None
    started = time.monotonic()
    assert _sleep({"type": "static", "value": 0.05}).execute(context(FakeTI("a_sleep"))) is None
    assert time.monotonic() - started >= 0.05  # waited in the worker


def test_a_long_sleep_defers_on_a_datetime_trigger() -> None:
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    before = datetime.datetime.now(tz=datetime.UTC)
    with pytest.raises(TaskDeferred) as deferred:
        _sleep({"type": "static", "value": 600}).execute(context(FakeTI("a_sleep")))
    trigger = deferred.value.trigger
    assert isinstance(trigger, DateTimeTrigger) and deferred.value.method_name == "resume"
    waited = (trigger.moment - before).total_seconds()
    assert 599 <= waited <= 601 + 5


def test_a_sleep_expression_sees_the_step_result() -> None:
    task = _sleep({"type": "javascript", "expr": "result.wait"})
    ti = FakeTI("a_sleep")
    ti.set("a", "return_value", {"wait": 900})
    with pytest.raises(TaskDeferred):
        task.execute(context(ti))
    ti.set("a", "return_value", {"wait": 0})
    assert task.execute(context(ti)) is None


# --- StepApprovalOperator: the answers, once Airflow hands them back ---------------------------------


def _approval(**suspend: Any) -> Any:
    document = step("a", suspend={"required_events": 1, "timeout": 600, **suspend})
    return dag_of(document, step("b")).task_dict["a_approval"]


def _answered(step_result: Any = None, *, approvals: Any = None, deadline: float | None = None) -> FakeTI:
    ti = FakeTI("a_approval")
    ti.set("a", OUTCOME_KEY, "success")
    ti.set("a", "return_value", step_result)
    if approvals is not None:
        ti.set("a_approval", "openflow_approvals", approvals)
    ti.set("a_approval", "openflow_approval_deadline", time.time() + 600 if deadline is None else deadline)
    return ti


def _answer(user: str, option: str, params: Any = None) -> dict[str, Any]:
    return {
        "chosen_options": [option],
        "params_input": params or {},
        "responded_by_user": {"id": user, "name": user},
    }


def test_a_step_that_did_not_run_needs_no_approval() -> None:
    ti = FakeTI("a_approval")
    ti.set("a", OUTCOME_KEY, "skipped")
    ti.set("a", "return_value", 5)
    assert _approval().execute(context(ti)) == 5  # no request opened
    assert ti.pushed(OUTCOME_KEY) == "skipped"


def test_an_approval_passes_the_step_result_on_and_the_answer_to_the_next_step() -> None:
    ti = _answered({"r": 1})
    assert _approval().execute_complete(context(ti), _answer("ann", "Approve", {"ok": 1})) == {"r": 1}
    assert ti.pushed(RESUME_KEY) == {"resume": {"ok": 1}, "resumes": [{"ok": 1}], "approvers": ["ann"]}
    assert ti.pushed(OUTCOME_KEY) == "success"


def test_a_link_payload_that_is_not_an_object_is_the_resume_value() -> None:
    ti = _answered()
    _approval().execute_complete(context(ti), _answer("ann", "Approve", {"__openflow_payload": "text"}))
    assert ti.pushed(RESUME_KEY)["resume"] == "text"


def test_a_rejection_fails_the_step() -> None:
    ti = _answered()
    with pytest.raises(AirflowFailException, match="SuspendedDisapproved: Disapproved by ann"):
        _approval().execute_complete(context(ti), _answer("ann", "Reject"))
    assert ti.pushed(OUTCOME_KEY) == "failed"
    assert ti.pushed("return_value")["error"]["name"] == "SuspendedDisapproved"


def test_a_timeout_fails_the_step_or_goes_on_with_continue_on_disapprove_timeout() -> None:
    timeout = {"error": "no answer", "error_type": "timeout"}
    with pytest.raises(AirflowFailException, match="SuspendedTimedOut"):
        _approval().execute_complete(context(_answered()), timeout)
    ti = _answered(3)
    assert _approval(continue_on_disapprove_timeout=True).execute_complete(context(ti), timeout) == 3
    error = {"error": {"name": "SuspendedTimedOut", "message": "Timed out waiting to be resumed"}}
    assert ti.pushed(RESUME_KEY) == {"resume": error, "resumes": [error], "approvers": []}


def test_required_events_counts_different_users() -> None:
    earlier = [{"approver": "ann", "payload": {}}]
    ti = _answered(approvals=earlier)
    _approval(required_events=2).execute_complete(context(ti), _answer("bob", "Approve"))
    assert ti.pushed(RESUME_KEY)["approvers"] == ["ann", "bob"]
    # The same user again does not count; the time is up, so the step times out.
    ti = _answered(approvals=earlier, deadline=time.time() - 1)
    with pytest.raises(AirflowFailException, match="SuspendedTimedOut"):
        _approval(required_events=2).execute_complete(context(ti), _answer("ann", "Approve"))


def test_self_approval_disabled_does_not_count_the_starters_answer() -> None:
    ti = _answered(deadline=time.time() - 1)
    with pytest.raises(AirflowFailException, match="SuspendedTimedOut"):
        _approval(self_approval_disabled=True).execute_complete(
            context(ti, started_by="ann"), _answer("ann", "Approve")
        )
    assert ti.pushed(RESUME_KEY) is None


def test_the_request_has_the_resume_form_only_not_the_flows_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a flow with an input schema, the request's form (what the Required Actions page shows)
    is the resume_form, even where a form field has the name of a flow input (issue 14, item 0)."""
    import airflow.providers.standard.operators.hitl as hitl
    from airflow.sdk.exceptions import TaskAwaitingInput

    requests: list[dict[str, Any]] = []
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **request: requests.append(request))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "note": {"type": "integer"}}}
    form = {"type": "object", "properties": {"note": {"type": "string"}, "ok": {"type": "boolean"}}}
    a = step("a", suspend={"required_events": 1, "timeout": 600, "resume_form": {"schema": form}})
    document = {"summary": "S", "schema": schema, "value": {"modules": [a, step("b")]}}
    approval = build_dag(load_flow(document).flow, dag_id="x").task_dict["a_approval"]
    ti = _answered()
    with pytest.raises(TaskAwaitingInput):
        approval.execute({**context(ti, {"n": 1, "note": 2}), "task_instance": SimpleNamespace(id="ti")})
    (request,) = requests
    assert set(request["params"]) == {"note", "ok"}
    assert "string" in request["params"]["note"]["schema"]["type"]
    assert request["options"] == ["Approve", "Reject"]


# --- Collectors: how a container on tasks ends ---------------------------------------------------------


def _loop(**extra: Any) -> Any:
    loop = {
        "id": "l",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "static", "value": [10, 20]},
            "skip_failures": False,
            "parallel": True,
            "modules": [step("b1"), step("b2")],
            **extra,
        },
    }
    return dag_of(loop)


def test_a_loop_collector_builds_the_array_in_index_order() -> None:
    collector = _loop().task_dict["l"]
    ti = FakeTI("l")
    ti.set("l_items", OUTCOME_KEY, "success")
    ti.set("l_items", "return_value", [10, 20])
    for index, value in enumerate([10, 20]):
        for task_id in ("l_iterations.b1", "l_iterations.b2"):
            ti.set(task_id, OUTCOME_KEY, "success", map_index=index)
            ti.set(task_id, "return_value", {"iter": value}, map_index=index)
    assert collector.execute(context(ti)) == [{"iter": 10}, {"iter": 20}]


def test_a_failed_iteration_fails_the_loop_without_a_retry() -> None:
    collector = _loop().task_dict["l"]
    ti = FakeTI("l")
    ti.set("l_items", OUTCOME_KEY, "success")
    ti.set("l_items", "return_value", [10])
    ti.set("l_iterations.b1", OUTCOME_KEY, "failed", map_index=0)
    ti.set("l_iterations.b1", "return_value", ERROR, map_index=0)
    with pytest.raises(AirflowFailException):
        collector.execute(context(ti))


def test_a_failed_iterator_fails_the_loop() -> None:
    collector = _loop().task_dict["l"]
    ti = FakeTI("l")
    ti.set("l_items", OUTCOME_KEY, "failed")
    ti.set("l_items", "return_value", ERROR)
    with pytest.raises(AirflowFailException):
        collector.execute(context(ti))
    assert ti.pushed("return_value") == ERROR


def test_the_loop_items_are_the_evaluated_iterator() -> None:
    ti = FakeTI("l_items")
    assert _loop().task_dict["l_items"].execute(context(ti)) == [10, 20]
    assert ti.pushed(OUTCOME_KEY) == "success"


def test_branchall_and_branchone_collectors() -> None:
    branchall = {
        "id": "ba",
        "value": {"type": "branchall", "branches": [{"modules": [step("x")]}, {"modules": []}]},
    }
    branchone = {
        "id": "bo",
        "value": {
            "type": "branchone",
            "branches": [{"expr": "false", "modules": [step("y")]}],
            "default": [],
        },
    }
    dag = dag_of(branchall, branchone)
    store: dict[Any, Any] = {}
    ti = FakeTI("ba", store)
    ti.set("ba_branch_0.x", OUTCOME_KEY, "success")
    ti.set("ba_branch_0.x", "return_value", "from x")
    assert dag.task_dict["ba"].execute(context(ti, {"n": 1})) == ["from x", {"n": 1}]  # empty: passes on
    ti.set("ba", "return_value", ["from x", {"n": 1}])
    assert run(dag.task_dict["bo_choose"], store, {"n": 1}) == -1  # no predicate true: the default
    assert run(dag.task_dict["bo"], store, {"n": 1}) == ["from x", {"n": 1}]  # empty default


def test_a_branchone_without_a_choice_fails() -> None:
    branchone = {"id": "bo", "value": {"type": "branchone", "branches": [], "default": [step("d")]}}
    collector = dag_of(branchone).task_dict["bo"]
    ti = FakeTI("bo")
    ti.set("bo_choose", OUTCOME_KEY, "failed")
    ti.set("bo_choose", "return_value", ERROR)
    with pytest.raises(AirflowFailException):
        collector.execute(context(ti))
    assert ti.pushed("return_value") == ERROR


# --- SubFlowRunOperator: the child run's result, once it has ended ------------------------------------


@pytest.fixture
def sub_flow(tmp_path: Any) -> Any:
    import json

    from airflow_openflow import load_openflow_dags

    (tmp_path / "team").mkdir()
    child = {"summary": "child", "value": {"modules": [step("c")]}}
    (tmp_path / "team" / "second.json").write_text(json.dumps(child))
    call = {"id": "call", "value": {"type": "flow", "path": "team/second", "input_transforms": {}}}
    (tmp_path / "caller.json").write_text(json.dumps({"summary": "caller", "value": {"modules": [call]}}))
    return load_openflow_dags(tmp_path, strict=True)["caller"].get_task("call")


def _child_ended(task: Any, status: str | None, result: Any, **ti: Any) -> FakeTI:
    fake = FakeTI("call", dag_id="caller", **ti)
    child_run = f"openflow__caller__{RUN_ID}__call__{fake.try_number}"
    fake.set("flow_result", STATUS_KEY, status, run_id=child_run)
    fake.set("flow_result", "return_value", result, run_id=child_run)
    return fake


def test_a_sub_flow_step_takes_the_child_run_result(sub_flow: Any) -> None:
    ti = _child_ended(sub_flow, "success", 42, try_number=2, max_tries=2)
    assert sub_flow.execute_complete(context(ti), {"state": "success"}) == 42
    assert ti.pushed(OUTCOME_KEY) == "success"


def test_a_failed_child_run_fails_the_step(sub_flow: Any) -> None:
    ti = _child_ended(sub_flow, "failure", ERROR)
    with pytest.raises(AirflowFailException, match="Boom: bad"):
        sub_flow.execute_complete(context(ti), {"state": "failed"})


def test_a_child_run_without_a_flow_result_fails_the_step(sub_flow: Any) -> None:
    ti = _child_ended(sub_flow, None, None)
    with pytest.raises(AirflowFailException, match="SubFlowDidNotComplete"):
        sub_flow.execute_complete(context(ti), {"state": "failed"})
