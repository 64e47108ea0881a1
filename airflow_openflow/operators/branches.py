"""Branches on Airflow tasks: one task group per branch, and a collector that is the step itself.

A parallel branchall's result is the array of its branches' results (spec 4.8); a branchone runs
the branch its chooser picked (spec 4.7), the others' tasks skip themselves. Each branch's steps
are tasks of their own, so the UI shows each branch and clearing a branch's task re-runs that
branch and what follows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_openflow.operators.body import body_outcome, not_completed
from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import OUTCOME_KEY
from airflow_openflow.spec.model import BranchAll, BranchOne


class BranchAllCollectorOperator(OpenFlowStepOperator):
    """The branchall step itself: the array of its branches' results, in branch order (spec 4.8).

    Runs once every branch's tasks are done (``all_done``) and reads how each branch ended from its
    tasks' XComs: a failed branch fails the branchall unless it has ``skip_failure`` (its error
    object is then its entry in the array); a stop inside a sequential branchall stops the flow.
    A failed branch already had its own retries, so the branchall as a whole is not retried.

    Takes the arguments of ``OpenFlowStepOperator`` (``module``: the branchall) and:

    :param branch_task_ids: For each branch, in order, the task ids of its steps (an empty list for
        an empty branch, which passes the previous result on).
    """

    ui_color = "#e2ecd9"

    def __init__(self, *, branch_task_ids: Sequence[Sequence[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.branch_task_ids = [list(ids) for ids in branch_task_ids]

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.container_rules import branch_all_outcome
        from airflow_openflow.runtime.outcomes import StepOutcome

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


class BranchChooserOperator(OpenFlowStepOperator):
    """Evaluates a branchone's predicates in order and records which branch runs (spec 4.7).

    The task ``<branchone>_choose``. ``return_value`` is the chosen branch's index (-1 for the
    default). The branches' first steps read it and run, or skip themselves; the collector takes
    the chosen branch's result. A predicate that throws fails the flow (spec 3.5).

    Takes the arguments of ``OpenFlowStepOperator`` (``module``: the branchone) and no others.
    """

    ui_color = "#e2ecd9"

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.container_rules import choose_branch
        from airflow_openflow.runtime.outcomes import OutcomeKind, StepOutcome
        from airflow_openflow.runtime.step_context import step_scope

        value = self.module.value
        assert isinstance(value, BranchOne)
        ctx = AirflowStepContext(context, self.plan)
        previous = ctx.previous_result()
        choice = choose_branch(self.module, value, previous, step_scope(ctx, result=previous))
        if not isinstance(choice, int):
            return self.finish(context, choice)
        label = "the default branch" if choice < 0 else f"branch {choice}"
        return self.finish(context, StepOutcome(OutcomeKind.SUCCESS, choice, f"chose {label}"))


class BranchOneCollectorOperator(OpenFlowStepOperator):
    """The branchone step itself: the chosen branch's last result, or its failure or stop.

    Runs once the chooser and every branch are done (``all_done``); an empty chosen branch passes
    the previous result on. The chosen branch already had its own retries, so a failure here is
    not retried.

    Takes the arguments of ``OpenFlowStepOperator`` (``module``: the branchone) and:

    :param chooser_task_id: The task of the ``BranchChooserOperator`` whose ``return_value`` is the
        chosen branch's index.
    :param branch_task_ids: Branch index (-1 for the default branch) -> the task ids of that
        branch's steps, in order.
    """

    ui_color = "#e2ecd9"

    def __init__(
        self, *, chooser_task_id: str, branch_task_ids: Mapping[int, Sequence[str]], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.chooser_task_id = chooser_task_id
        self.branch_task_ids = {index: list(ids) for index, ids in branch_task_ids.items()}

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.container_rules import branch_one_outcome
        from airflow_openflow.runtime.outcomes import OutcomeKind, StepOutcome, outcome_kind
        from airflow_openflow.runtime.step import apply_stop_after_if

        ti = context["ti"]
        kind = outcome_kind(ti.xcom_pull(task_ids=self.chooser_task_id, key=OUTCOME_KEY))
        choice = ti.xcom_pull(task_ids=self.chooser_task_id, key="return_value")
        if kind is not OutcomeKind.SUCCESS or not isinstance(choice, int):
            error = choice if isinstance(choice, dict) else not_completed(self.chooser_task_id)
            return self.finish(
                context, StepOutcome(OutcomeKind.FAILED, error, "no branch was chosen", retryable=False)
            )
        ids = self.branch_task_ids.get(choice, [])
        body = body_outcome(ti, ids, -1) if ids else None
        ctx = AirflowStepContext(context, self.plan)
        outcome = branch_one_outcome(self.module, choice, body, ctx.previous_result())
        if outcome.kind is OutcomeKind.SUCCESS:
            outcome = apply_stop_after_if(self.module, outcome.result, ctx)
        return self.finish(
            context, StepOutcome(outcome.kind, outcome.result, outcome.message, retryable=False)
        )
