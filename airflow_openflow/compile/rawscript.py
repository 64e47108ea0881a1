"""``rawscript``: an inline script step (python3, bash) as one task."""

from __future__ import annotations

from typing import Any

from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import FlowModule, RawScript


def build(module: FlowModule, plan: StepPlan, **task_kwargs: Any) -> OpenFlowStepOperator:
    assert isinstance(module.value, RawScript)
    return OpenFlowStepOperator(
        task_id=module.id,
        module=module,
        plan=plan,
        doc_md=_doc(module, module.value),
        **task_kwargs,
    )


def _doc(module: FlowModule, value: RawScript) -> str:
    title = module.summary or module.id
    return f"**{title}** ({value.language} script)\n\n```\n{value.content}\n```"
