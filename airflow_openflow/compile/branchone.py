"""``branchone`` at the top level: a chooser task, one task group per branch, a collector.

``<id>_choose`` evaluates the predicates; the groups ``<id>_branch_<i>`` and ``<id>_default`` hold
each branch's steps as tasks (those of the branches not chosen skip themselves); the task ``<id>``
takes the chosen branch's result (the added names get a ``_`` appended when a step already has them:
naming.TaskIds). A branchone with a ``retry`` runs in one task (container.py).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, TriggerRule

from airflow_openflow.compile.body import body_chain
from airflow_openflow.compile.naming import TaskIds, branch_display_name, helper_display_name, one_line
from airflow_openflow.compile.task import display_name
from airflow_openflow.operators.branches import BranchChooserOperator, BranchOneCollectorOperator
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import BranchOne, FlowModule
from airflow_openflow.spec.support import container_on_tasks


def runs_on_tasks(module: FlowModule) -> bool:
    return isinstance(module.value, BranchOne) and container_on_tasks(module)


def build(module: FlowModule, plan: StepPlan, *, trigger_rule: Any, names: TaskIds) -> tuple[list[Any], Any]:
    """The chooser, the branches' tasks and the collector: returns ([chooser], collector)."""
    value = module.value
    assert isinstance(value, BranchOne)
    name = display_name(module)
    chooser = BranchChooserOperator(
        task_id=names.reserve(f"{module.id}_choose"),
        task_display_name=helper_display_name(name, "choose a branch"),
        module=module,
        plan=plan,
        trigger_rule=trigger_rule,
        doc_md=f"Evaluates the predicates of branchone `{module.id}` in order; returns the chosen index.",
    )
    branches = [
        (
            index,
            branch.modules,
            names.reserve(f"{module.id}_branch_{index}"),
            branch_display_name(name, index, branch.summary),
            one_line(branch.summary or (f"when {branch.expr}" if branch.expr else "")),
        )
        for index, branch in enumerate(value.branches)
    ]
    branches.append(
        (
            -1,
            value.default,
            names.reserve(f"{module.id}_default"),
            helper_display_name(name, "default branch"),
            "when no branch predicate is true",
        )
    )
    lasts: list[Any] = []
    branch_task_ids: dict[int, list[str]] = {}
    for index, modules, group_id, group_name, tooltip in branches:
        with TaskGroup(group_id=group_id, group_display_name=group_name, tooltip=tooltip):
            tasks = body_chain(
                modules,
                plan,
                first_rule=TriggerRule.NONE_FAILED,
                where=f"{group_id} (runs when that branch is chosen)",
                branch_choice=(chooser.task_id, index),
            )
        names.record(t.task_id for t in tasks)
        if tasks:
            chooser >> tasks[0]
            lasts.append(tasks[-1])
        branch_task_ids[index] = [t.task_id for t in tasks]
    collector = BranchOneCollectorOperator(
        task_id=module.id,
        task_display_name=name,
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
