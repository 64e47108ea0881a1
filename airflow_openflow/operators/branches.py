"""A parallel branchall on Airflow tasks: one task group per branch, and a collector whose result
is the array of the branches' results (spec 4.8). Each branch's steps are tasks of their own, so
the UI shows each branch and clearing a branch's task re-runs that branch and what follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_openflow.operators.body import body_outcome
from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.spec.model import BranchAll


class BranchAllCollectorOperator(OpenFlowStepOperator):
    ui_color = "#e2ecd9"

    def __init__(self, *, branch_task_ids: Sequence[Sequence[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.branch_task_ids = [list(ids) for ids in branch_task_ids]

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.containers import branch_all_outcome
        from airflow_openflow.runtime.step import StepOutcome

        value = self.module.value
        assert isinstance(value, BranchAll)
        ti = context["ti"]
        bodies = [body_outcome(ti, ids, -1) for ids in self.branch_task_ids]
        previous = AirflowStepContext(context, self.plan).previous_result()
        outcome = branch_all_outcome(self.module, value, bodies, previous)
        # A failed branch already ran its own retries; the branchall as a whole is not re-run.
        return self.finish(
            context, StepOutcome(outcome.kind, outcome.result, outcome.message, retryable=False)
        )
