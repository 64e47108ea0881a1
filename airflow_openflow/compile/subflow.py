"""``type: flow`` at the top level, when the child flow is a DAG of the same DAG file: a task that
starts a run of the child's DAG and waits for it deferred (operators/subflow.py).

Other sub-flow steps (nested in loops or branches, a child that is not a DAG of the same load, and
every sub-flow under ``run_flow``, whose ``DAG.test`` runs one DAG) run the child inside the
calling step's task (runtime/container_runner.py), with the same semantics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_openflow.compile.task import display_name, task_settings
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import FlowModule, PathFlow

if TYPE_CHECKING:
    from airflow_openflow.operators.subflow import SubFlowRunOperator


def build(
    module: FlowModule, plan: StepPlan, *, child_dag_id: str, child_result_task_id: str, **task_kwargs: Any
) -> SubFlowRunOperator:
    # Imported here: the operator's module brings Airflow's trigger_dag (its database models), which
    # costs every DAG-file parse ~0.4 s; only flows with such a step need it.
    from airflow_openflow.operators.subflow import SubFlowRunOperator

    value = module.value
    assert isinstance(value, PathFlow)
    return SubFlowRunOperator(
        task_id=module.id,
        module=module,
        plan=plan,
        trigger_dag_id=child_dag_id,
        child_result_task_id=child_result_task_id,
        doc_md=f"**{module.summary or module.id}**: sub-flow `{value.path}`, run as DAG "
        f"`{child_dag_id}` (see the task's *Triggered DAG* link); its flow result is this step's result.",
        **{"task_display_name": display_name(module), **task_settings(module), **task_kwargs},
    )
