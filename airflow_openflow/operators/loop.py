"""A for-loop on Airflow tasks: the iterator, a mapped task group with one task per body
step and iteration, and a collector whose result is the loop's array.

Each iteration is a ``map_index``, so the Airflow UI shows every iteration's tasks and clearing one
iteration's task re-runs that iteration and what follows it (the collector, the later steps), not
the others. Stops inside an iteration only end that iteration (spec 2.1, parallel loops): the step
after a stopping step sees it and skips itself (Airflow's own skipping is a no-op inside mapped
groups in 3.3).
"""

from __future__ import annotations

from typing import Any

from airflow_openflow.operators.body import body_outcome, not_completed
from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import OUTCOME_KEY, PARALLELISM_KEY
from airflow_openflow.spec.model import ForloopFlow


class LoopItemsOperator(OpenFlowStepOperator):
    """Evaluates a for-loop's iterator: its ``return_value`` (the items) is what the group maps over.

    The task ``<loop>_items``. A parallel loop with a ``parallelism`` also gets that width
    evaluated here (XCom ``openflow_parallelism``): the iterations' first steps wait on it when
    the loop is gated (an expression, or a body of several steps). An iterator or a width that
    throws fails the loop.

    Takes the arguments of ``OpenFlowStepOperator`` (``module``: the loop) and no others.
    """

    ui_color = "#e2ecd9"

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.container_rules import loop_items, loop_width
        from airflow_openflow.runtime.errors import ExpressionError
        from airflow_openflow.runtime.outcomes import OutcomeKind, StepOutcome
        from airflow_openflow.runtime.step_context import step_scope

        ctx = AirflowStepContext(context, self.plan)
        previous = ctx.previous_result()
        loop = self.module.value
        assert isinstance(loop, ForloopFlow)
        items = loop_items(self.module, loop, step_scope(ctx, result=previous))
        if not isinstance(items, list):
            return self.finish(context, items)
        self.log.info("loop %s: %d iteration(s)", self.plan.step_id, len(items))
        transform = loop.parallelism
        if loop.parallel and transform is not None:
            # The iterations' first steps wait on this width (compile/forloop.py: when gated).
            try:
                width = loop_width(transform, step_scope(ctx, result=previous), len(items))
            except ExpressionError as exc:
                error = exc.error_object()
                message = f"parallelism: {error['error']['message']}"
                return self.finish(context, StepOutcome(OutcomeKind.FAILED, error, message, retryable=False))
            self.log.info("loop %s: at most %d iteration(s) at once", self.plan.step_id, width)
            context["ti"].xcom_push(key=PARALLELISM_KEY, value=width)
        return self.finish(context, StepOutcome(OutcomeKind.SUCCESS, items))


class LoopCollectorOperator(OpenFlowStepOperator):
    """The loop step itself: the array of its iterations' results, in index order (spec 4.4).

    Runs once every iteration is done (``all_done``), reads how each iteration ended from its
    tasks' XComs (one ``map_index`` per iteration), applies ``skip_failures`` and
    ``stop_after_all_iters_if``, and ends like any step. Which tasks to read comes from ``plan``
    (``items_task_id``, ``body_task_ids``).

    Takes the arguments of ``OpenFlowStepOperator`` (``module``: the loop) and no others.
    """

    ui_color = "#e2ecd9"

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.container_rules import loop_outcome
        from airflow_openflow.runtime.outcomes import OutcomeKind, StepOutcome, outcome_kind
        from airflow_openflow.runtime.step_context import step_scope

        ti = context["ti"]
        items_id = self.plan.items_task_id
        items_kind = outcome_kind(ti.xcom_pull(task_ids=items_id, key=OUTCOME_KEY))
        items = ti.xcom_pull(task_ids=items_id, key="return_value")
        if items_kind is not OutcomeKind.SUCCESS or not isinstance(items, list):
            error = items if isinstance(items, dict) else not_completed(str(items_id))
            return self.finish(
                context, StepOutcome(OutcomeKind.FAILED, error, "the iterator failed", retryable=False)
            )
        # Lazily: a sequential loop that ended early never reads the iterations it skipped.
        bodies = (body_outcome(ti, self.plan.body_task_ids, index) for index in range(len(items)))
        ctx = AirflowStepContext(context, self.plan)
        previous = ctx.previous_result()
        loop = self.module.value
        assert isinstance(loop, ForloopFlow)
        outcome = loop_outcome(self.module, loop, bodies, step_scope(ctx, result=previous))
        if outcome.kind is OutcomeKind.FAILED:
            outcome = StepOutcome(outcome.kind, outcome.result, outcome.message, retryable=False)
        return self.finish(context, outcome)
