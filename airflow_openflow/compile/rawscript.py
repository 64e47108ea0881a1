"""``rawscript``: an inline script step (python3, bash, deno, bun, nativets) as one task."""

from __future__ import annotations

from typing import Any

from airflow_openflow.compile.task import step_task
from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import FlowModule, RawScript


def build(module: FlowModule, plan: StepPlan, **task_kwargs: Any) -> OpenFlowStepOperator:
    assert isinstance(module.value, RawScript)
    title = module.summary or module.id
    doc = f"**{title}** ({module.value.language} script)\n\n```\n{module.value.content}\n```"
    return step_task(module, plan, doc_md=doc, **task_kwargs)
