"""``suspend`` on a step: the approval task after it (Airflow human-in-the-loop), which the next
step waits for. At the top level, and in a loop iteration or a branch on tasks (compile/body.py),
where it is mapped with the iteration."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from airflow.sdk import TriggerRule

from airflow_openflow.compile.naming import helper_display_name
from airflow_openflow.compile.params import params_from_schema
from airflow_openflow.compile.task import display_name
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import FlowModule

if TYPE_CHECKING:
    from airflow_openflow.operators.approval import StepApprovalOperator


def approval_task(
    module: FlowModule, step_plan: StepPlan, task_id: str, **task_kwargs: Any
) -> StepApprovalOperator:
    """The approval task of step ``module``, whose plan is ``step_plan``; ``resume_form.schema`` is
    its form. ``task_kwargs``: what a loop iteration's tasks get (``iteration``, ``step_task_id``,
    limits)."""
    from airflow_openflow.operators.approval import StepApprovalOperator

    assert module.suspend is not None
    form = (module.suspend.resume_form or {}).get("schema")
    name = display_name(module)
    return StepApprovalOperator(
        task_id=task_id,
        module=module,
        # The step's own result is what the approval reads and passes on.
        plan=dataclasses.replace(step_plan, previous_step_id=module.id, resume_task_id=None),
        flow_name=step_plan.flow.name,
        step_name=name,
        task_display_name=helper_display_name(name, "approval"),
        # Not required in Airflow's sense; the operator checks an answer against the schema itself.
        form_params=params_from_schema(form if isinstance(form, dict) else None, enforce_required=False),
        # Runs after a skipped step too, to record that there was nothing to approve.
        trigger_rule=TriggerRule.NONE_FAILED,
        doc_md=f"Approval of step **{name}** (`{module.id}`, its `suspend`): approve or "
        "reject it on Airflow's Required Actions page or through the REST API.",
        **task_kwargs,
    )
