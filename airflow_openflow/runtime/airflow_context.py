"""A ``StepRunContext`` backed by a running Airflow task: XCom for results, the DAG run's conf for
the flow input, Variables and Connections for Windmill variables and resources."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_openflow.runtime.cache import cached_result, store_result
from airflow_openflow.runtime.connections import get_resource, get_variable
from airflow_openflow.runtime.container_rules import iteration_input
from airflow_openflow.runtime.inputs import caller_flow_env, flow_input_from, preprocessed_input
from airflow_openflow.runtime.outcomes import OutcomeKind, error_name_value, flow_verdict, outcome_kind
from airflow_openflow.runtime.plan import OUTCOME_KEY, RESUME_KEY, FlowInfo, StepPlan
from airflow_openflow.spec.model import FlowModule

if TYPE_CHECKING:
    from airflow_openflow.runtime.shared_dir import SharedLocation
    from airflow_openflow.runtime.wmill_session import CheckpointStore, WmillBackend


def run_flow_input(context: Mapping[str, Any], flow: FlowInfo) -> dict[str, Any]:
    """The run's flow input: the preprocessor's result when it ran (a run started by a trigger),
    else the run's ``conf`` (for a run the schedule started: the schedule file's ``args``, which a
    backfill's conf may override); with the schema's defaults either way."""
    if flow.preprocessor_task_id is not None:
        ti = context["ti"]
        kind = outcome_kind(ti.xcom_pull(task_ids=flow.preprocessor_task_id, key=OUTCOME_KEY))
        if kind is OutcomeKind.SUCCESS:
            result = ti.xcom_pull(task_ids=flow.preprocessor_task_id, key="return_value")
            return preprocessed_input(result, flow.schema)
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    if flow.schedule_args is not None and _started_by_schedule(context.get("dag_run")):
        conf = {**flow.schedule_args, **conf}
    return flow_input_from(conf, flow.schema)


def _started_by_schedule(dag_run: Any) -> bool:
    run_type = getattr(dag_run, "run_type", None)
    return str(getattr(run_type, "value", run_type)) in ("scheduled", "backfill")


class AirflowStepContext:
    def __init__(self, context: Mapping[str, Any], plan: StepPlan, *, iteration: Any = None) -> None:
        self._context = context
        self._plan = plan
        self._ti = context["ti"]
        self._iteration = iteration  # the item of this loop iteration (mapped loop steps)
        # Step results pulled by this task: ``previous_result`` and ``results.<id>`` of the same
        # step are one XCom read (each read is an Execution API call). Readers get JSON copies
        # (runtime/expression_engine.py), so the value kept here is never changed.
        self._pulled: dict[str, Any] = {}

    @cached_property
    def run_input(self) -> Any:
        return run_flow_input(self._context, self._plan.flow)

    @cached_property
    def flow_input(self) -> Any:
        if not self._plan.in_loop_iteration:
            return self.run_input
        return iteration_input(self.run_input, self._ti.map_index, self._iteration)

    @cached_property
    def flow_env(self) -> Mapping[str, Any]:
        if self._plan.flow.flow_env:
            return self._plan.flow.flow_env
        return caller_flow_env(getattr(self._context.get("dag_run"), "conf", None))

    @cached_property
    def shared_location(self) -> SharedLocation | None:
        """The run's ``./shared`` folder (a ``SharedLocation``) for a ``same_worker`` flow, or the
        caller's for a sub-flow run started by such a flow; else None (runtime/shared_dir.py)."""
        from airflow_openflow.runtime.inputs import CALLER_SHARED_KEY
        from airflow_openflow.runtime.shared_dir import SharedLocation

        caller = (getattr(self._context.get("dag_run"), "conf", None) or {}).get(CALLER_SHARED_KEY)
        if isinstance(caller, Mapping):
            return SharedLocation(str(caller["base"]), str(caller["dag_id"]), str(caller["run_id"]))
        if not self._plan.flow.same_worker:
            return None
        return SharedLocation.for_run(self._ti.dag_id, self._ti.run_id)

    @property
    def is_last_attempt(self) -> bool:
        # After a clear Airflow sets max_tries = try_number + retries, so this holds across restarts.
        return bool(self._ti.try_number > self._ti.max_tries)

    def previous_result(self) -> Any:
        if self._plan.handles_failure_of:
            return self.failed_step_result()
        if self._plan.previous_step_id is None:
            return self.flow_input  # the first step of a flow or of a loop body: its input
        return self.result_of(self._plan.previous_step_id)

    @cached_property
    def extra_names(self) -> dict[str, Any]:
        """Names beyond the usual ones (spec 3.3): ``resume``, ``resumes``, ``approvers`` for the step
        after an approval; ``error``, ``started_at``, ``flow_job_id`` for the failure module."""
        if self._plan.resume_task_id is not None:
            resumed = self._ti.xcom_pull(
                task_ids=self._plan.resume_task_id, key=RESUME_KEY, map_indexes=self._ti.map_index
            )
            return dict(resumed) if isinstance(resumed, Mapping) else {}
        if not self._plan.handles_failure_of:
            return {}
        dag_run = self._context.get("dag_run")
        started = getattr(dag_run, "start_date", None)
        return {
            "error": error_name_value(self.previous_result()),
            "started_at": started.isoformat() if started is not None else None,
            "flow_job_id": getattr(dag_run, "run_id", None),
        }

    def failed_step_result(self) -> Any:
        """For the failure module: the result of the step that failed the flow."""
        step_ids = list(self._plan.handles_failure_of)
        kinds = self._ti.xcom_pull(task_ids=step_ids, key=OUTCOME_KEY)
        verdict = flow_verdict(list(zip(step_ids, map(outcome_kind, kinds), strict=True)), self._pull, None)
        return verdict.result

    def result_of(self, step_id: str) -> Any:
        in_iteration = self._plan.iteration_task_ids or {}
        if step_id in in_iteration:
            return self._ti.xcom_pull(
                task_ids=in_iteration[step_id], key="return_value", map_indexes=self._ti.map_index
            )
        if step_id not in self._plan.visible_step_ids:
            return None
        return self._pull(step_id)

    def readable_step_ids(self) -> set[str]:
        """The ids ``results.<id>`` reads here: the steps before this one (and of its iteration)."""
        return {*self._plan.visible_step_ids, *(self._plan.iteration_task_ids or {})}

    def variable(self, path: str) -> Any:
        return get_variable(path)

    @property
    def task_state_store(self) -> CheckpointStore | None:
        """The task's state store (Airflow 3.3; kept across tries), or None where there is none."""
        store: CheckpointStore | None = self._context.get("task_state_store")
        return store

    def cache_get(self, key: str) -> tuple[Any] | None:
        return cached_result(self._plan.flow.dag_id, key)

    def cache_set(self, key: str, result: Any, ttl: float) -> None:
        store_result(self._plan.flow.dag_id, key, result, ttl)

    def resource(self, path: str) -> Any:
        return get_resource(path)

    def wmill_backend(self, module: FlowModule) -> WmillBackend:
        """What a step's ``wmill`` calls use (runtime/airflow_wmill.py)."""
        from airflow_openflow.runtime.airflow_wmill import AirflowWmillBackend

        return AirflowWmillBackend(self._context, self._plan, module)

    def _pull(self, task_id: str) -> Any:
        if task_id not in self._pulled:
            self._pulled[task_id] = self._ti.xcom_pull(task_ids=task_id, key="return_value")
        return self._pulled[task_id]
