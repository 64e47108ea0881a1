"""The task every builder places for a step: an ``OpenFlowStepOperator`` with the step's retries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow_openflow.compile.naming import step_display_name
from airflow_openflow.operators.retry_policy import WindmillRetryPolicy
from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.runtime.retry import retry_interval
from airflow_openflow.spec.model import FlowModule


def step_task(module: FlowModule, plan: StepPlan, *, doc_md: str, **task_kwargs: Any) -> OpenFlowStepOperator:
    return OpenFlowStepOperator(
        task_id=module.id,
        module=module,
        plan=plan,
        doc_md=doc_md,
        **{"task_display_name": display_name(module), **task_settings(module), **task_kwargs},
    )


def display_name(module: FlowModule) -> str:
    """What the UI shows for the step's task: its ``summary``, else its id (naming.py)."""
    return step_display_name(module.summary, module.id)


def retried(module: FlowModule) -> bool:
    """A step with a ``retry``: a container that has one runs in one task (Windmill re-runs it whole)."""
    return module.retry is not None and module.retry.max_retries > 0


def task_settings(module: FlowModule) -> dict[str, Any]:
    """Airflow settings a step's own fields give its task: its retries."""
    retry = module.retry
    if retry is None or not retried(module):
        return {}
    # Airflow counts and schedules the retries; the policy gives each one Windmill's delay and the
    # step itself evaluates retry_if (runtime/step.py), so a refused retry fails without waiting.
    return {
        "retries": retry.max_retries,
        "retry_delay": timedelta(seconds=retry_interval(retry, 0) or 0),
        "retry_policy": WindmillRetryPolicy(retry),
    }
