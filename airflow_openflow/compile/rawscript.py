"""``rawscript``: an inline script step (any language that runs: docs/languages.md) as one task;
also a hub script with no vendored copy (a ``script`` step left by spec/scripts.py), whose code is
fetched when it runs."""

from __future__ import annotations

from typing import Any

from airflow_openflow.compile.task import step_task
from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import FlowModule, PathScript, RawScript


def build(module: FlowModule, plan: StepPlan, **task_kwargs: Any) -> OpenFlowStepOperator:
    title = module.summary or module.id
    if isinstance(module.value, PathScript):
        doc = (
            f"**{title}** (Windmill Hub script `{module.value.path}`: not vendored, its code is "
            "fetched from the hub when the step runs)"
        )
        return step_task(module, plan, doc_md=doc, **task_kwargs)
    assert isinstance(module.value, RawScript)
    doc = f"**{title}** ({module.value.language} script)\n\n```\n{module.value.content}\n```"
    return step_task(module, plan, doc_md=doc, **task_kwargs)
