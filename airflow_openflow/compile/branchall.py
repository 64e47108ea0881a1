"""``branchall`` with parallel branches at the top level: one task group per branch.

``<id>_branch_<i>`` holds branch i's steps as tasks (started together after the previous step);
the task ``<id>`` collects the array. A sequential branchall (its branches run one after the other,
and a stop inside one stops the flow) or one with a ``retry`` runs in one task (container.py).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, TriggerRule

from airflow_openflow.compile.task import task_settings
from airflow_openflow.operators.body import BodyStepOperator
from airflow_openflow.operators.branches import BranchAllCollectorOperator
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import BranchAll, FlowModule


def runs_on_tasks(module: FlowModule) -> bool:
    value = module.value
    return (
        isinstance(value, BranchAll)
        and value.parallel
        and bool(value.branches)
        and (module.retry is None or not module.retry.max_retries)
    )


def build(module: FlowModule, plan: StepPlan, *, trigger_rule: Any) -> tuple[list[Any], Any]:
    """The branches' tasks: returns (first task of each non-empty branch, collector task)."""
    value = module.value
    assert isinstance(value, BranchAll)
    entries: list[Any] = []
    lasts: list[Any] = []
    branch_task_ids: list[list[str]] = []
    for index, branch in enumerate(value.branches):
        ids: list[str] = []
        with TaskGroup(group_id=f"{module.id}_branch_{index}", tooltip=branch.summary or "") as group:
            before: dict[str, str] = {}
            previous: Any = None
            for position, step in enumerate(branch.modules):
                step_plan = StepPlan(
                    step_id=step.id,
                    flow=plan.flow,
                    previous_step_id=branch.modules[position - 1].id if position else None,
                    visible_step_ids=plan.visible_step_ids,
                    iteration_task_ids=dict(before),
                )
                task = BodyStepOperator(
                    task_id=step.id,
                    module=step,
                    plan=step_plan,
                    trigger_rule=trigger_rule if position == 0 else TriggerRule.NONE_FAILED,
                    doc_md=f"Step `{step.id}` of branch {index} of `{module.id}`.",
                    **task_settings(step),
                )
                if previous is not None:
                    previous >> task
                else:
                    entries.append(task)
                previous = task
                before[step.id] = f"{group.group_id}.{step.id}"
                ids.append(before[step.id])
            if previous is not None:
                lasts.append(previous)
        branch_task_ids.append(ids)
    collector = BranchAllCollectorOperator(
        task_id=module.id,
        module=module,
        plan=plan,
        branch_task_ids=branch_task_ids,
        trigger_rule=TriggerRule.ALL_DONE,
        doc_md=f"Branchall `{module.id}`: the array of its branches' results, in branch order.",
    )
    for last in lasts:
        last >> collector
    return entries, collector
