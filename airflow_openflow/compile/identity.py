"""``identity``: passes the previous result through, as one task (so it can be cleared like any step)."""

from __future__ import annotations

from typing import Any

from airflow_openflow.compile.task import step_task
from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import FlowModule


def build(module: FlowModule, plan: StepPlan, **task_kwargs: Any) -> OpenFlowStepOperator:
    doc = f"**{module.summary or module.id}** (identity: returns the previous result)"
    return step_task(module, plan, doc_md=doc, **task_kwargs)
