"""A parallel for-loop on Airflow tasks: the iterator, a mapped task group with one task per body
step and iteration, and a collector whose result is the loop's array.

Each iteration is a ``map_index``, so the Airflow UI shows every iteration's tasks and clearing one
iteration's task re-runs that iteration and what follows it (the collector, the later steps), not
the others. Stops inside an iteration only end that iteration (spec 2.1, parallel loops): the step
after a stopping step sees it and skips itself (Airflow's own skipping is a no-op inside mapped
groups in 3.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import OUTCOME_KEY
from airflow_openflow.spec.model import ForloopFlow


class LoopItemsOperator(OpenFlowStepOperator):
    """Evaluates the loop's iterator; its ``return_value`` (the items) is what the group maps over."""

    ui_color = "#e2ecd9"

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.containers import loop_items
        from airflow_openflow.runtime.step import OutcomeKind, StepOutcome, step_scope

        ctx = AirflowStepContext(context, self.plan)
        previous = ctx.previous_result()
        loop = self.module.value
        assert isinstance(loop, ForloopFlow)
        items = loop_items(self.module, loop, step_scope(ctx, result=previous))
        if not isinstance(items, list):
            return self.finish(context, items)
        self.log.info("loop %s: %d iteration(s)", self.plan.step_id, len(items))
        return self.finish(context, StepOutcome(OutcomeKind.SUCCESS, items))


class LoopBodyOperator(OpenFlowStepOperator):
    """One body step of one iteration (mapped over the items)."""

    template_fields: Sequence[str] = ("iteration",)  # resolved per map index from the items

    def __init__(self, *, iteration: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.iteration = iteration

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.step import OutcomeKind, StepOutcome, run_step

        ti = context["ti"]
        earlier = self.plan.previous_step_id
        if earlier is not None:
            task_id = (self.plan.iteration_task_ids or {})[earlier]
            kind = ti.xcom_pull(task_ids=task_id, key=OUTCOME_KEY, map_indexes=ti.map_index)
            if kind in (OutcomeKind.STOPPED.value, OutcomeKind.STOPPED_SKIPPED.value, OutcomeKind.CUT.value):
                message = f"an earlier step of iteration {ti.map_index} stopped it"
                return self.finish(context, StepOutcome(OutcomeKind.CUT, None, message))
        ctx = AirflowStepContext(context, self.plan, iteration=self.iteration)
        return self.finish(context, run_step(self.module, ctx))


class LoopCollectorOperator(OpenFlowStepOperator):
    """The loop step itself: builds the array from the iterations (index order), applies
    ``skip_failures`` and ``stop_after_all_iters_if``, and ends like any step."""

    ui_color = "#e2ecd9"

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.containers import loop_outcome
        from airflow_openflow.runtime.step import OutcomeKind, StepOutcome, outcome_kind, step_scope

        ti = context["ti"]
        items_id = self.plan.items_task_id
        items_kind = outcome_kind(ti.xcom_pull(task_ids=items_id, key=OUTCOME_KEY))
        items = ti.xcom_pull(task_ids=items_id, key="return_value")
        if items_kind is not OutcomeKind.SUCCESS or not isinstance(items, list):
            error = items if isinstance(items, dict) else _not_completed(str(items_id))
            return self.finish(
                context, StepOutcome(OutcomeKind.FAILED, error, "the iterator failed", retryable=False)
            )
        bodies = [self._iteration(ti, index) for index in range(len(items))]
        ctx = AirflowStepContext(context, self.plan)
        previous = ctx.previous_result()
        loop = self.module.value
        assert isinstance(loop, ForloopFlow)
        outcome = loop_outcome(self.module, loop, bodies, step_scope(ctx, result=previous))
        if outcome.kind is OutcomeKind.FAILED:
            outcome = StepOutcome(outcome.kind, outcome.result, outcome.message, retryable=False)
        return self.finish(context, outcome)

    def _iteration(self, ti: Any, index: int) -> Any:
        """How iteration ``index`` ended: its last result, its stop, or its failure."""
        from airflow_openflow.runtime.containers import BodyOutcome
        from airflow_openflow.runtime.step import OutcomeKind, outcome_kind

        def result(task_id: str) -> Any:
            return ti.xcom_pull(task_ids=task_id, key="return_value", map_indexes=index)

        last_id: str | None = None
        last_kind = None
        for task_id in self.plan.body_task_ids:
            kind = outcome_kind(ti.xcom_pull(task_ids=task_id, key=OUTCOME_KEY, map_indexes=index))
            if kind is None:
                return BodyOutcome("failed", _not_completed(task_id))
            if kind in (OutcomeKind.FAILED, OutcomeKind.ERROR_STOP):
                return BodyOutcome("failed", result(task_id))
            if kind is OutcomeKind.CUT:
                break
            last_id, last_kind = task_id, kind
            if kind in (OutcomeKind.STOPPED, OutcomeKind.STOPPED_SKIPPED):
                return BodyOutcome("stopped", result(task_id))
        if last_id is None:
            return BodyOutcome("completed", None)
        if last_kind is OutcomeKind.CONTINUED_ERROR:
            return BodyOutcome("failed", result(last_id))
        return BodyOutcome("completed", result(last_id))


def _not_completed(task_id: str) -> dict[str, Any]:
    message = f"task {task_id} did not complete; see its log in Airflow"
    return {"error": {"name": "StepDidNotComplete", "message": message}}
