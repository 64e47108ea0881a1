"""``branchone`` at the top level: a chooser task, one task group per branch, a collector.

``<id>_choose`` evaluates the predicates; the groups ``<id>_branch_<i>`` and ``<id>_default`` hold
each branch's steps as tasks (those of the branches not chosen skip themselves); the task ``<id>``
takes the chosen branch's result. A branchone with a ``retry`` runs in one task (container.py).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, TriggerRule

from airflow_openflow.compile.task import task_settings
from airflow_openflow.operators.body import BodyStepOperator
from airflow_openflow.operators.branches import BranchChooserOperator, BranchOneCollectorOperator
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import BranchOne, FlowModule


def runs_on_tasks(module: FlowModule) -> bool:
    return isinstance(module.value, BranchOne) and (module.retry is None or not module.retry.max_retries)


def build(module: FlowModule, plan: StepPlan, *, trigger_rule: Any) -> tuple[list[Any], Any]:
    value = module.value
    assert isinstance(value, BranchOne)
    chooser = BranchChooserOperator(
        task_id=f"{module.id}_choose",
        module=module,
        plan=plan,
        trigger_rule=trigger_rule,
        doc_md=f"Evaluates the predicates of branchone `{module.id}` in order; returns the chosen index.",
    )
    branches = [
        (index, branch.modules, f"{module.id}_branch_{index}") for index, branch in enumerate(value.branches)
    ]
    branches.append((-1, value.default, f"{module.id}_default"))
    lasts: list[Any] = []
    branch_task_ids: dict[int, list[str]] = {}
    for index, modules, group_id in branches:
        ids: list[str] = []
        with TaskGroup(group_id=group_id) as group:
            before: dict[str, str] = {}
            previous: Any = chooser
            for position, step in enumerate(modules):
                step_plan = StepPlan(
                    step_id=step.id,
                    flow=plan.flow,
                    previous_step_id=modules[position - 1].id if position else None,
                    visible_step_ids=plan.visible_step_ids,
                    iteration_task_ids=dict(before),
                    branch_choice=(chooser.task_id, index) if position == 0 else None,
                )
                task = BodyStepOperator(
                    task_id=step.id,
                    module=step,
                    plan=step_plan,
                    trigger_rule=TriggerRule.NONE_FAILED,
                    doc_md=f"Step `{step.id}` of {group_id}: runs when that branch is chosen.",
                    **task_settings(step),
                )
                previous >> task
                previous = task
                before[step.id] = f"{group.group_id}.{step.id}"
                ids.append(before[step.id])
            if modules:
                lasts.append(previous)
        branch_task_ids[index] = ids
    collector = BranchOneCollectorOperator(
        task_id=module.id,
        module=module,
        plan=plan,
        chooser_task_id=chooser.task_id,
        branch_task_ids=branch_task_ids,
        trigger_rule=TriggerRule.ALL_DONE,
        doc_md=f"Branchone `{module.id}`: the chosen branch's result.",
    )
    chooser >> collector
    for last in lasts:
        last >> collector
    return [chooser], collector
