"""Loops, branches and sub-flows (forloopflow, whileloopflow, branchone, branchall, flow) as one
task each.

The task runs the container and everything nested in it (runtime/container_runner.py); its result is
the container's result (the iteration / branch array, or the chosen branch's result). Mapping
parallel loops and branches onto task groups of their own is the next step (see docs/mapping.md).
"""

from __future__ import annotations

from typing import Any

from airflow_openflow.compile.task import step_task
from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import BranchAll, BranchOne, FlowModule, ForloopFlow, PathFlow, WhileloopFlow


def build(module: FlowModule, plan: StepPlan, **task_kwargs: Any) -> OpenFlowStepOperator:
    return step_task(module, plan, doc_md=_doc(module), **task_kwargs)


def _doc(module: FlowModule) -> str:
    value = module.value
    title = f"**{module.summary or module.id}**"
    if isinstance(value, ForloopFlow):
        mode = "parallel" if value.parallel else "sequential"
        what = f"{mode} for-loop over `{value.iterator.expr or value.iterator.value}`"
        body = value.modules
    elif isinstance(value, WhileloopFlow):
        what, body = "while-loop (until a stop_after_if or a failure)", value.modules
    elif isinstance(value, PathFlow):
        child = value.resolved
        what = f"sub-flow `{value.path}`" + (f" ({child.summary})" if child and child.summary else "")
        body = list(child.value.modules) if child else []
    elif isinstance(value, BranchOne):
        what = f"branchone: {len(value.branches)} conditional branch(es) and a default"
        body = [m for b in value.branches for m in b.modules] + list(value.default)
    else:
        assert isinstance(value, BranchAll)
        what = (
            f"branchall: {len(value.branches)} branch(es), {'parallel' if value.parallel else 'sequential'}"
        )
        body = [m for b in value.branches for m in b.modules]
    steps = ", ".join(f"`{m.id}`" for m in body) or "none"
    return f"{title}: {what}. Runs inside this task; inner steps: {steps}. The task log shows each of them."
