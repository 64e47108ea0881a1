"""Contract tests of airflow_openflow/compat: what each function relies on in Airflow's
non-public API is still there, with the same shape. A failure names the compat function to fix
after an Airflow upgrade (the integration tests exercise the same functions end to end)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest


def _params(function: Callable[..., Any]) -> set[str]:
    return set(inspect.signature(function).parameters)


def _require(compat_function: str, condition: bool, what: str) -> None:
    assert condition, f"airflow_openflow.compat.{compat_function}: Airflow changed: {what}"


def test_task_sdk_task_states() -> None:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    params = _params(RuntimeTaskInstance.get_task_states)
    _require(
        "task_sdk.task_states",
        {"dag_id", "map_index", "task_ids", "run_ids"} <= params,
        f"RuntimeTaskInstance.get_task_states takes {sorted(params)}",
    )


def test_task_sdk_mapped_task_states() -> None:
    """Without a map index, the states come keyed ``<task_id>_<map_index>`` (the route's format)."""
    import inspect

    from airflow.api_fastapi.execution_api.routes import task_instances

    source = inspect.getsource(task_instances.get_task_instance_states)
    _require(
        "task_sdk.mapped_task_states",
        'f"{task.task_id}_{task.map_index}"' in source and "map_index is not None" in source,
        "the task-states route no longer keys mapped instances <task_id>_<map_index>",
    )


def test_task_sdk_xcom_value() -> None:
    from airflow.sdk.execution_time.xcom import XCom

    params = _params(XCom.get_one)
    _require(
        "task_sdk.xcom_value",
        {"key", "dag_id", "task_id", "run_id", "map_index"} <= params,
        f"XCom.get_one takes {sorted(params)}",
    )


def test_task_sdk_set_xcom() -> None:
    from airflow.sdk.execution_time.xcom import XCom

    params = _params(XCom.set)
    _require(
        "task_sdk.set_xcom",
        {"key", "value", "dag_id", "task_id", "run_id", "map_index"} <= params,
        f"XCom.set takes {sorted(params)}",
    )


def test_task_sdk_dag_run_state() -> None:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    params = _params(RuntimeTaskInstance.get_dagrun_state)
    _require(
        "task_sdk.dag_run_state", {"dag_id", "run_id"} <= params, f"get_dagrun_state takes {sorted(params)}"
    )


def test_task_sdk_trigger_dag_run() -> None:
    from airflow.sdk.execution_time import comms, task_runner

    _require(
        "task_sdk.trigger_dag_run",
        "SUPERVISOR_COMMS" in inspect.get_annotations(task_runner),  # assigned when a task starts
        "no task_runner.SUPERVISOR_COMMS",
    )
    message = comms.TriggerDagRun(dag_id="d", run_id="r", conf={"a": 1}, note="n")
    _require(
        "task_sdk.trigger_dag_run", (message.dag_id, message.conf) == ("d", {"a": 1}), "TriggerDagRun fields"
    )
    fields = set(comms.ErrorResponse.model_fields)
    _require(
        "task_sdk.trigger_dag_run", {"error", "detail"} <= fields, f"ErrorResponse fields {sorted(fields)}"
    )
    from airflow.sdk.exceptions import ErrorType

    _require(
        "task_sdk.trigger_dag_run",
        ErrorType.DAGRUN_ALREADY_EXISTS.value == "DAGRUN_ALREADY_EXISTS",
        "ErrorType.DAGRUN_ALREADY_EXISTS",
    )


def test_task_sdk_skip_tasks() -> None:
    from airflow.sdk.execution_time.comms import SkipDownstreamTasks

    message = SkipDownstreamTasks(tasks=["a", ("b", 2)])
    _require("task_sdk.skip_tasks", list(message.tasks) == ["a", ("b", 2)], "SkipDownstreamTasks(tasks=...)")


def test_operators_drop_inherited_params() -> None:
    """Airflow passes each ``__init__`` of an operator's classes the DAG's params as ``params``
    (what ``drop_inherited_params`` removes), and the parent's own ``__init__`` still gets them
    after they are removed (so a task sees the DAG's params all the same)."""
    from airflow.sdk import DAG, BaseOperator, Param

    from airflow_openflow.compat.operators import drop_inherited_params

    seen: dict[str, Any] = {}

    class Parent(BaseOperator):  # as HITLOperator: its form is `params`
        def __init__(self, *, params: dict[str, Any] | None = None, **kwargs: Any) -> None:
            seen["parent"] = dict(params or {})
            super().__init__(params=params, **kwargs)

    class Child(Parent):  # as StepApprovalOperator
        def __init__(self, **kwargs: Any) -> None:
            seen["child"] = dict(kwargs.get("params") or {})
            drop_inherited_params(kwargs)
            super().__init__(params={"f": Param(1)}, **kwargs)

    with DAG("contract_params", schedule=None, params={"d": Param(2)}):
        task = Child(task_id="t")
    _require(
        "operators.drop_inherited_params",
        set(seen["child"]) == {"d"},
        f"an operator's __init__ got params {sorted(seen['child'])}, not the DAG's",
    )
    _require(
        "operators.drop_inherited_params",
        set(seen["parent"]) == {"d", "f"} and set(task.params) == {"d", "f"},
        f"the parent's __init__ got params {sorted(seen['parent'])}, not the DAG's merged with its own",
    )


def test_api_server_route_dependencies_import() -> None:
    import airflow_openflow.compat.api_server as api

    for name in (
        "DagAccessEntity",
        "GetUserDep",
        "SessionDep",
        "UpdateHITLDetailPayload",
        "requires_access_dag",
    ):
        _require(f"api_server.{name}", getattr(api, name, None) is not None, f"{name} is gone")
    _require(
        "api_server.DagAccessEntity",
        hasattr(api.DagAccessEntity, "HITL_DETAIL"),
        "DagAccessEntity.HITL_DETAIL",
    )
    payload = api.UpdateHITLDetailPayload(chosen_options=["Approve"], params_input={"x": 1})
    _require("api_server.UpdateHITLDetailPayload", payload.chosen_options == ["Approve"], "payload fields")


def test_api_server_record_hitl_answer() -> None:
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail

    params = _params(update_hitl_detail)
    expected = {
        "dag_id",
        "dag_run_id",
        "task_id",
        "update_hitl_detail_payload",
        "user",
        "session",
        "map_index",
    }
    _require(
        "api_server.record_hitl_answer", expected <= params, f"update_hitl_detail takes {sorted(params)}"
    )


@pytest.mark.parametrize(
    ("compat_function", "method", "expected"),
    [
        ("api_server.read_task_xcom", "get_many", {"run_id", "key", "task_ids", "dag_ids", "map_indexes"}),
        ("api_server.read_task_xcom", "deserialize_value", {"result"}),
        (
            "api_server.write_task_xcom",
            "set",
            {"key", "value", "dag_id", "task_id", "run_id", "map_index", "session"},
        ),
    ],
)
def test_api_server_xcom_rows(compat_function: str, method: str, expected: set[str]) -> None:
    from airflow.models.xcom import XComModel

    params = _params(getattr(XComModel, method))
    _require(compat_function, expected <= params, f"XComModel.{method} takes {sorted(params)}")


def test_api_server_run_and_task_columns() -> None:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.state import TaskInstanceState

    _require(
        "api_server.run_started_by", hasattr(DagRun, "triggering_user_name"), "DagRun.triggering_user_name"
    )
    for column in ("dag_id", "run_id", "task_id", "map_index", "state"):
        _require("api_server.task_instance_state", hasattr(TaskInstance, column), f"TaskInstance.{column}")
    _require(
        "api_server.task_instance_state",
        TaskInstanceState.AWAITING_INPUT.value == "awaiting_input",
        "the state of a waiting HITL task",
    )


def test_api_server_session_and_variables() -> None:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    _require("api_server.metadata_session", callable(create_session), "airflow.utils.session.create_session")
    _require("api_server.get_variable", "default_var" in _params(Variable.get), "Variable.get(default_var=)")


def test_metadata_apply_live_config_and_create_db() -> None:
    from airflow import settings as airflow_settings
    from airflow.configuration import conf
    from airflow.utils import db

    _require("metadata.apply_live_config", callable(conf.set), "conf.set(section, option, value)")
    _require(
        "metadata.apply_live_config", hasattr(airflow_settings, "DAGS_FOLDER"), "airflow.settings.DAGS_FOLDER"
    )
    _require("metadata.create_metadata_db", callable(db.initdb), "airflow.utils.db.initdb")
    _require(
        "metadata.create_metadata_db",
        isinstance(getattr(airflow_settings, "SQL_ALCHEMY_CONN", None), str),
        "airflow.settings.SQL_ALCHEMY_CONN (the configured database URL)",
    )


def test_metadata_run_outcome_rows() -> None:
    from airflow.models.xcom import XComModel
    from airflow.sdk.bases.xcom import BaseXCom
    from airflow.sdk.execution_time.xcom import resolve_xcom_backend

    for column in ("dag_id", "run_id", "task_id", "key"):
        _require("metadata.run_outcome_rows", hasattr(XComModel, column), f"XComModel.{column}")
    backend = resolve_xcom_backend()
    _require(
        "metadata.run_outcome_rows", issubclass(backend, BaseXCom), "resolve_xcom_backend() gives a BaseXCom"
    )
    _require(
        "metadata.run_outcome_rows", hasattr(backend, "deserialize_value"), "XCom backend deserialize_value"
    )


def test_metadata_latest_run_task_rows() -> None:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    for column in ("id", "dag_id", "run_id"):
        _require("metadata.latest_run_task_rows", hasattr(DagRun, column), f"DagRun.{column}")
    for column in (
        "dag_id",
        "run_id",
        "task_id",
        "map_index",
        "state",
        "start_date",
        "end_date",
        "try_number",
    ):
        _require("metadata.latest_run_task_rows", hasattr(TaskInstance, column), f"TaskInstance.{column}")


def test_metadata_expire_awaiting_input_sweep() -> None:
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    method = SchedulerJobRunner.check_awaiting_input_timeouts
    params = list(inspect.signature(method).parameters)
    # Called unbound with a stand-in `self` that has only `log`; a new parameter would break it.
    _require(
        "metadata.expire_awaiting_input_sweep",
        params[:1] == ["self"]
        and all(
            p.default is not inspect.Parameter.empty
            for p in list(inspect.signature(method).parameters.values())[1:]
        ),
        f"check_awaiting_input_timeouts takes {params}",
    )


def test_local_executor_internals() -> None:
    from airflow.executors.local_executor import LocalExecutor

    for name in ("start", "end", "_read_results"):
        _require("local_executor.RunnerLocalExecutor", callable(getattr(LocalExecutor, name, None)), name)
    executor = LocalExecutor(parallelism=1)
    for name in ("workers", "activity_queue", "result_queue"):
        _require(
            "local_executor.RunnerLocalExecutor",
            name in dir(executor) or name in LocalExecutor.__annotations__,
            name,
        )


def test_local_executor_holds_back_work_through_its_queue_order() -> None:
    """``RunnerLocalExecutor`` holds task instances back by leaving them out of
    ``order_queued_tasks_by_priority`` (what ``_get_workloads_to_schedule`` sends), tracks what it
    sent in ``_process_workloads`` and what came back in ``change_state``, and reads the
    ``task_instance`` table's states."""
    from airflow.executors.base_executor import BaseExecutor
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.ti_deps.dependencies_states import ACTIVE_STATES
    from airflow.utils.state import TaskInstanceState

    what = "local_executor.RunnerLocalExecutor"
    _require(
        what,
        "order_queued_tasks_by_priority" in inspect.getsource(BaseExecutor._get_workloads_to_schedule),
        "_get_workloads_to_schedule no longer takes its tasks from order_queued_tasks_by_priority",
    )
    _require(
        what,
        {"key", "state", "info", "remove_running"} <= _params(BaseExecutor.change_state),
        "change_state",
    )
    _require(what, {"workload_items"} <= _params(BaseExecutor._process_workloads), "_process_workloads")
    key = TaskInstanceKey("d", "t", "r", 1, 3)
    _require(what, key.primary == ("d", "t", "r", 3), "TaskInstanceKey.primary")
    from airflow_openflow.compat.local_executor import _ACTIVE, _DONE

    counted = {TaskInstanceState(state) for state in _ACTIVE} | {TaskInstanceState.QUEUED}
    _require(what, counted == set(ACTIVE_STATES), f"the scheduler counts {sorted(ACTIVE_STATES)}")
    _require(what, all(TaskInstanceState(state) for state in _DONE), "finished states")
    columns = set(TaskInstance.__table__.c.keys())
    _require(what, {"dag_id", "task_id", "run_id", "map_index", "state"} <= columns, "task_instance columns")


def test_local_executor_a_stale_end_report_spares_a_task_instance_still_queued() -> None:
    """A resumed task instance held back (still in ``queued_tasks``) is one the executor "has":
    the scheduler's event processing, which ``DAG.test`` calls, then treats the deferring
    workload's late end report as stale instead of failing it (apache/airflow#72716)."""
    from airflow.executors.base_executor import BaseExecutor
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    what = "local_executor.RunnerLocalExecutor (held-back resumes)"
    _require(what, "self.queued_tasks" in inspect.getsource(BaseExecutor.has_task), "has_task")
    source = inspect.getsource(SchedulerJobRunner.process_executor_events)
    _require(what, "executor.has_task(ti)" in source, "process_executor_events no longer asks has_task")


def test_dag_pickle_round_trip_serializes_as_the_dag_built() -> None:
    """A DAG with a required input (its Param holds NOTSET), a mapped loop, a branch and a task
    group, kept and read back, serializes exactly as the one built; the sentinels come back as the
    process's own objects; a callback of a module outside the allowed ones is refused."""
    import json

    from airflow.sdk.definitions._internal.types import NOTSET
    from airflow.serialization.serialized_objects import DagSerialization

    from airflow_openflow.compat import dag_pickle
    from airflow_openflow.compile import build_dag
    from airflow_openflow.spec import load_flow

    flow = load_flow(
        {
            "schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
            "value": {
                "modules": [
                    {
                        "id": "loop",
                        "value": {
                            "type": "forloopflow",
                            "iterator": {"type": "javascript", "expr": "[1, 2]"},
                            "skip_failures": True,
                            "modules": [{"id": "x", "value": {"type": "identity"}}],
                        },
                    },
                    {
                        "id": "b",
                        "value": {
                            "type": "branchall",
                            "branches": [{"modules": [{"id": "y", "value": {"type": "identity"}}]}],
                        },
                    },
                ]
            },
        }
    ).flow
    assert flow is not None
    dag = build_dag(flow, dag_id="kept")
    data = dag_pickle.dumps(dag)
    _require("dag_pickle.dumps", data is not None, "a built DAG no longer pickles")
    assert data is not None
    back = dag_pickle.loads(data)

    def serialized(d: Any) -> str:
        return json.dumps(DagSerialization.to_dict(d), sort_keys=True, default=str)

    _require("dag_pickle.loads", serialized(back) == serialized(dag), "a DAG read back serializes otherwise")
    _require("dag_pickle", back.params.get_param("n").value is NOTSET, "NOTSET is not the process's own")
    assert dag_pickle.checked_dumps({"on_failure_callback": _params}) is None  # this test module's code


def test_dag_test_loop_sleeps_with_the_time_module_from_dag_test_itself() -> None:
    from airflow.sdk import DAG

    from airflow_openflow.compat.dag_test_loop import dag_test_code

    source = inspect.getsource(DAG.test)
    _require("dag_test_loop.woken_by", "import time" in source, "DAG.test no longer imports time")
    _require("dag_test_loop.woken_by", "time.sleep(1)" in source, "DAG.test waits otherwise")
    _require("dag_test_loop.woken_by", dag_test_code() is DAG.test.__code__, "DAG.test's code object")


def test_dag_test_loop_shortens_only_the_sleeps_of_dag_test(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from airflow_openflow.compat import dag_test_loop

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # the real sleep, as woken_by finds it

    def loop_like() -> None:  # stands for DAG.test: its code object is the one shortened
        time.sleep(1)

    def other() -> None:
        time.sleep(1)

    news = iter([False, False, True])
    monkeypatch.setattr(dag_test_loop, "dag_test_code", lambda: loop_like.__code__)
    with dag_test_loop.woken_by(lambda: next(news)):
        loop_like()  # two looks without news (two short sleeps), then news: it returns
        assert slept == [dag_test_loop.POLL_S, dag_test_loop.POLL_S]
        other()  # any other caller sleeps as asked
        assert slept[-1] == 1
    assert time.sleep == slept.append  # restored
