"""``branchall`` with parallel branches at the top level: one task group per branch.

``<id>_branch_<i>`` holds branch i's steps as tasks (started together after the previous step);
the task ``<id>`` collects the array. A sequential branchall (its branches run one after the other,
and a stop inside one stops the flow) or one with a ``retry`` runs in one task (container.py).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, TriggerRule

from airflow_openflow.compile.body import body_chain
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
        with TaskGroup(group_id=f"{module.id}_branch_{index}", tooltip=branch.summary or ""):
            tasks = body_chain(
                branch.modules,
                plan,
                first_rule=trigger_rule,
                where=f"branch {index} of `{module.id}`",
            )
        if tasks:
            entries.append(tasks[0])
            lasts.append(tasks[-1])
        branch_task_ids.append([t.task_id for t in tasks])
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
