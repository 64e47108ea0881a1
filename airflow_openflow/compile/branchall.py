"""``branchall`` at the top level: one task group per branch.

``<id>_branch_<i>`` (with a ``_`` appended when a step has that id: naming.TaskIds) holds branch i's
steps as tasks; the task ``<id>`` collects the array.
Parallel branches all start after the previous step. Sequential ones (``parallel: false``) are
chained: each branch's first step starts when the branch before has finished (``all_done``) and
skips itself and every later branch when that branch failed (without ``skip_failure``) or stopped
(the collector then fails the flow or stops it). A branchall with a ``retry`` runs in one task
(container.py).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, TriggerRule

from airflow_openflow.compile.body import body_chain
from airflow_openflow.compile.naming import TaskIds, branch_display_name, one_line
from airflow_openflow.compile.task import display_name
from airflow_openflow.operators.branches import BranchAllCollectorOperator
from airflow_openflow.runtime.plan import StepPlan, Tail
from airflow_openflow.spec.model import BranchAll, FlowModule
from airflow_openflow.spec.support import container_on_tasks


def runs_on_tasks(module: FlowModule) -> bool:
    return isinstance(module.value, BranchAll) and container_on_tasks(module)


def build(module: FlowModule, plan: StepPlan, *, trigger_rule: Any, names: TaskIds) -> tuple[list[Any], Any]:
    """The branches' tasks: returns (the tasks the previous step starts, collector task)."""
    value = module.value
    assert isinstance(value, BranchAll)
    branches: list[tuple[int, list[Any]]] = []  # the non-empty branches and their tasks
    branch_task_ids: list[list[str]] = []
    name = display_name(module)
    for index, branch in enumerate(value.branches):
        chained = not value.parallel and bool(branches)  # waits for the branch before it
        group_id = names.reserve(f"{module.id}_branch_{index}")
        with TaskGroup(
            group_id=group_id,
            group_display_name=branch_display_name(name, index, branch.summary),
            tooltip=one_line(branch.summary),
        ):
            tasks = body_chain(
                branch.modules,
                plan,
                first_rule=TriggerRule.ALL_DONE if chained else trigger_rule,
                where=f"branch {index} of `{module.id}`",
            )
        names.record(t.task_id for t in tasks)
        if tasks:
            if chained:
                before_index, before_tasks = branches[-1]
                before_tasks[-1] >> tasks[0]
                tasks[0].after_branch = (module, before_index, tuple(t.task_id for t in before_tasks))
            branches.append((index, tasks))
        branch_task_ids.append([t.task_id for t in tasks])
    if not value.parallel:
        # What a gate skips when the branchall ends before its branch: the rest of its branch and
        # the later branches, a tail of one tuple (not one copy per branch).
        flat = tuple(t.task_id for _, tasks in branches for t in tasks)
        start = 0
        for _, tasks in branches:
            tasks[0].later_branch_task_ids = Tail(flat, start + 1)
            start += len(tasks)
    collector = BranchAllCollectorOperator(
        task_id=module.id,
        task_display_name=name,
        module=module,
        plan=plan,
        branch_task_ids=branch_task_ids,
        trigger_rule=TriggerRule.ALL_DONE,
        doc_md=f"Branchall `{module.id}`: the array of its branches' results, in branch order.",
    )
    for _, tasks in branches:
        tasks[-1] >> collector
    entries = [tasks[0] for _, tasks in (branches if value.parallel else branches[:1])]
    return entries, collector
