"""A ``type: flow`` step whose child flow is a DAG of its own: a real, linked child DAG run."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunLink

from airflow_openflow.compat.task_sdk import trigger_dag_run
from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import STATUS_KEY
from airflow_openflow.spec.model import PathFlow

#: Airflow's limit on a run id's length.
_MAX_RUN_ID = 250


class SubFlowRunOperator(OpenFlowStepOperator):
    """Runs a ``type: flow`` step as a real run of the child flow's DAG, linked from the step.

    Triggers a run of the child flow's DAG with the evaluated arguments as its ``conf``, waits
    for it deferred on ``DagRunEndedTrigger`` (the triggerer polls; no worker slot is held), then
    takes the child's flow result as the step's result: the child's status decides success or
    failure, and the step's own ``stop_after_if``, ``retry`` and ``continue_on_error`` apply as for
    any step. Where those rules need no expression, the trigger ends the step at once with the
    child's result (success, ``continue_on_error``, or a failure Airflow retries while attempts
    are left); a ``stop_after_if`` or ``retry_if`` to evaluate resumes it in a worker
    (``execute_complete``), except where a resume must wait (``triggers/waits.py``) and the trigger's
    answer lets the flow go on (``runtime/deferred_rules.py``). A child of its own DAG can
    be watched, cleared and restarted in the UI like any run.

    The child run id is ``openflow__<dag_id>__<run_id>__<step>__<try>``, so a retry or a clear of
    the step starts a new child run; the task's "Triggered DAG" link opens the child run.

    Takes the arguments of ``OpenFlowStepOperator`` (``module``: the ``type: flow`` step) and:

    :param trigger_dag_id: The dag_id of the child flow's DAG (a DAG of the same load), whose run
        the step starts; the "Triggered DAG" link reads it too.
    :param child_result_task_id: The child DAG's final task (``flow_result``), whose XComs hold the
        child's flow status and result.
    :param poll_interval: Seconds between two looks at the child run's state while the step waits.
    """

    # Nothing to render: the compiler names the child DAG and its final task (both fixed when the
    # DAG is built, and task ids hold no Jinja); the child's arguments are OpenFlow expressions.
    template_fields: Sequence[str] = ()
    operator_extra_links = (TriggerDagRunLink(),)
    ui_color = "#f0e6d8"

    def __init__(
        self,
        *,
        trigger_dag_id: str,
        child_result_task_id: str,
        poll_interval: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.trigger_dag_id = trigger_dag_id  # read by TriggerDagRunLink
        self.child_result_task_id = child_result_task_id
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.deferred_rules import deferred_rules
        from airflow_openflow.runtime.inputs import CALLER_FLOW_ENV_KEY, CALLER_SHARED_KEY
        from airflow_openflow.runtime.step import start_sub_flow

        ctx = AirflowStepContext(context, self.plan)
        started = start_sub_flow(self.module, ctx)
        if not isinstance(started, Mapping):
            return self.finish(context, started)  # skipped, mocked, or arguments that failed
        conf = dict(started)
        if ctx.flow_env:
            conf[CALLER_FLOW_ENV_KEY] = dict(ctx.flow_env)  # used when the child has no flow_env
        if ctx.shared_location is not None:  # same_worker: the child's steps use our ./shared
            conf[CALLER_SHARED_KEY] = dataclasses.asdict(ctx.shared_location)
        run_id = self._child_run_id(context)
        self.log.info("sub-flow %s: starting run %s of DAG %s", self._path, run_id, self.trigger_dag_id)
        # A run that already exists (this try started it before the worker died) is waited for.
        trigger_dag_run(
            dag_id=self.trigger_dag_id,
            run_id=run_id,
            conf=conf,
            note=f"sub-flow of {context['ti'].dag_id}, run {context['ti'].run_id}, step {self.task_id}",
        )
        context["ti"].xcom_push(key="trigger_run_id", value=run_id)  # read by TriggerDagRunLink
        from airflow_openflow.triggers.waits import SETTLE_S, DagRunEndedTrigger, not_before

        # The trigger ends the step itself where the step's rules need no expression (the
        # module's stop_after_if on a success, retry_if on a failure with attempts left); the rest
        # comes back to execute_complete, where the step's rules decide.
        module = self.module
        if not ctx.is_last_attempt:
            retry_if = module.retry.retry_if if module.retry is not None else None
            on_failure = None if retry_if else "fail"  # Airflow retries it
        else:
            on_failure = "continue" if module.continue_on_error else "fail"
        resume_after = not_before(self._executor_name())
        rules = None
        if resume_after and (module.stop_after_if is not None or on_failure is None):
            # A resume in a worker waits here: the trigger answers the rule itself where the
            # answer lets the flow go on (runtime/deferred_rules.py).
            readable = tuple(sorted(ctx.readable_step_ids()))
            deferred = deferred_rules(module, ctx, readable, retry_if_applies=on_failure is None)
            rules = deferred.stored() if deferred is not None else None
            self.log.info(
                "sub-flow %s: should its rules stop the flow or end its retries, the step resumes in a "
                "worker no sooner than %.0f s after this deferral under this executor "
                "(apache/airflow#72716; docs/mapping.md)",
                self._path,
                SETTLE_S,
            )
        trigger = DagRunEndedTrigger(
            dag_id=self.trigger_dag_id,
            run_id=run_id,
            poll_interval=self.poll_interval,
            not_before=resume_after,
            result_task_id=self.child_result_task_id,
            end_on_success=module.stop_after_if is None,
            end_on_failure=on_failure,
            rules=rules,
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.step import finish_sub_flow

        ti = context["ti"]
        run_id = self._child_run_id(context)

        def pulled(key: str) -> Any:
            return ti.xcom_pull(
                dag_id=self.trigger_dag_id, run_id=run_id, task_ids=self.child_result_task_id, key=key
            )

        status, result = pulled(STATUS_KEY), pulled("return_value")
        self.log.info("sub-flow %s: run %s ended, flow status %s", self._path, run_id, status)
        if status not in ("success", "failure"):
            from airflow_openflow.triggers.waits import child_did_not_complete

            status, result = "failure", child_did_not_complete(self.trigger_dag_id, run_id)
        ctx = AirflowStepContext(context, self.plan)
        outcome = finish_sub_flow(self.module, ctx, succeeded=status == "success", result=result)
        return self.finish(context, outcome)

    def _executor_name(self) -> str:
        """The executor that runs this task, as configured (its own, else the default)."""
        from airflow.sdk import conf

        return str(self.executor or conf.get("core", "executor", fallback="") or "")

    @property
    def _path(self) -> str:
        value = self.module.value
        return value.path if isinstance(value, PathFlow) else self.task_id

    def _child_run_id(self, context: Any) -> str:
        ti = context["ti"]
        run_id = f"openflow__{ti.dag_id}__{ti.run_id}__{ti.task_id}__{ti.try_number}"
        if len(run_id) > _MAX_RUN_ID:
            digest = hashlib.sha256(run_id.encode()).hexdigest()[:16]
            run_id = f"openflow__{ti.task_id[:150]}__{digest}__{ti.try_number}"
        return run_id
