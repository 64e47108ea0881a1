"""Steps of a loop iteration or of a branch on tasks of their own, and how such a body ended."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import OUTCOME_KEY


class BodyStepOperator(OpenFlowStepOperator):
    """One step of a loop iteration (mapped over the items) or of a branch, on a task of its own.

    A stop only ends its iteration / branch: the next step sees the stop and skips itself
    (``cut``), as Airflow's own skipping does nothing inside mapped groups in 3.3.
    """

    template_fields: Sequence[str] = ("iteration",)  # resolved per map index from the items

    def __init__(self, *, iteration: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.iteration = iteration

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.step import OutcomeKind, StepOutcome, run_step

        ti = context["ti"]
        if self.plan.branch_choice is not None:  # the first step of a branchone branch on tasks
            chooser, index = self.plan.branch_choice
            if ti.xcom_pull(task_ids=chooser, key="return_value") != index:
                return self.finish(context, StepOutcome(OutcomeKind.CUT, None, "its branch was not chosen"))
        earlier = self.plan.previous_step_id
        if earlier is not None:
            task_id = (self.plan.iteration_task_ids or {})[earlier]
            kind = ti.xcom_pull(task_ids=task_id, key=OUTCOME_KEY, map_indexes=ti.map_index)
            if kind in (OutcomeKind.STOPPED.value, OutcomeKind.STOPPED_SKIPPED.value, OutcomeKind.CUT.value):
                message = "an earlier step of its iteration or branch stopped it"
                return self.finish(context, StepOutcome(OutcomeKind.CUT, None, message))
        ctx = AirflowStepContext(context, self.plan, iteration=self.iteration)
        return self.finish(context, run_step(self.module, ctx))


def body_outcome(ti: Any, task_ids: Sequence[str], map_index: int) -> Any:
    """How a body (one iteration: ``map_index``; a branch: -1) ended: its last result, its stop,
    or its failure, from its tasks' outcomes."""
    from airflow_openflow.runtime.containers import BodyOutcome
    from airflow_openflow.runtime.step import OutcomeKind, StepOutcome, outcome_kind

    def result(task_id: str) -> Any:
        return ti.xcom_pull(task_ids=task_id, key="return_value", map_indexes=map_index)

    last_id: str | None = None
    last_kind = None
    for task_id in task_ids:
        kind = outcome_kind(ti.xcom_pull(task_ids=task_id, key=OUTCOME_KEY, map_indexes=map_index))
        if kind is None:
            return BodyOutcome("failed", not_completed(task_id))
        if kind in (OutcomeKind.FAILED, OutcomeKind.ERROR_STOP):
            return BodyOutcome("failed", result(task_id))
        if kind is OutcomeKind.CUT:
            break
        last_id, last_kind = task_id, kind
        if kind in (OutcomeKind.STOPPED, OutcomeKind.STOPPED_SKIPPED):
            value = result(task_id)
            return BodyOutcome("stopped", value, stop=StepOutcome(kind, value, f"stopped at {task_id}"))
    if last_id is None:
        return BodyOutcome("completed", None)
    if last_kind is OutcomeKind.CONTINUED_ERROR:
        return BodyOutcome("failed", result(last_id))
    return BodyOutcome("completed", result(last_id))


def not_completed(task_id: str) -> dict[str, Any]:
    message = f"task {task_id} did not complete; see its log in Airflow"
    return {"error": {"name": "StepDidNotComplete", "message": message}}
