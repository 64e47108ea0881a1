"""Steps of a loop iteration or of a branch on tasks of their own, and how such a body ended."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_openflow.compat.task_sdk import skip_tasks
from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.plan import OUTCOME_KEY, PARALLELISM_KEY
from airflow_openflow.spec.model import BranchAll, FlowModule, ForloopFlow

if TYPE_CHECKING:
    from airflow_openflow.runtime.outcomes import BodyOutcome


class BodyStepOperator(OpenFlowStepOperator):
    """One step of a loop iteration (mapped over the items) or of a branch, on a task of its own.

    A stop only ends its iteration / branch: the next step sees the stop and skips itself
    (``cut``), as Airflow's own skipping does nothing inside mapped groups in 3.3.

    The first step of an iteration that waits for an earlier one (a sequential loop; a parallel
    loop with an expression ``parallelism``, or a static one and several steps) starts deferred on
    ``EarlierIterationTrigger`` and runs once that iteration has finished, and in a sequential loop
    skips the rest of the loop when the loop ended there.

    Takes the arguments of ``OpenFlowStepOperator`` (``module``, ``plan``) and:

    :param iteration: The item of this loop iteration, which the step sees as
        ``flow_input.iter.value`` (``iter.index`` is the task's ``map_index``): the loop's mapped
        items, resolved per map index. None for a step of a branch.
    """

    template_fields: Sequence[str] = ("iteration",)  # resolved per map index from the items

    def __init__(self, *, iteration: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.iteration = iteration
        #: on the first step of a loop body whose iterations wait for earlier ones: the loop module
        #: and all the body's task ids. Sequential loop: iteration i starts once iteration i - 1 has
        #: finished and not ended the loop. Parallel loop with a gated ``parallelism`` w:
        #: iteration i starts once iteration i - w has finished (at most w run at once).
        self.loop_gate: FlowModule | None = None
        self.items_task_id: str | None = None
        self.body_task_ids: tuple[str, ...] = ()
        #: on the first step of branch k > 0 of a sequential branchall: (the branchall, the index and
        #: task ids of the non-empty branch before), and the tasks to skip when the branchall ends
        self.after_branch: tuple[FlowModule, int, tuple[str, ...]] | None = None
        self.later_branch_task_ids: Sequence[str] = ()

    def execute(self, context: Any) -> Any:
        # A gated first step starts in the triggerer (compile/body.py) and resumes in
        # ``after_previous_iteration``. It comes here when the earlier iteration has finished
        # already (run_flow holds it back until then), or where Airflow does not start tasks from
        # the triggerer (``airflow tasks test``, say): it then waits in the worker.
        ti = context["ti"]
        previous = ti.map_index - self._window(ti) if self.loop_gate is not None else -1
        if previous >= 0:
            from airflow_openflow.triggers.waits import FINISHED_STATES, task_state

            last = self.body_task_ids[-1]
            if task_state(ti.dag_id, ti.run_id, last, previous) not in FINISHED_STATES:
                self.log.info("waiting in the worker for iteration %d (task %s) to finish", previous, last)
                while task_state(ti.dag_id, ti.run_id, last, previous) not in FINISHED_STATES:
                    time.sleep(0.5)
            self.log.info("iteration %d has finished: this iteration starts", previous)
        return self._run(context)

    def after_previous_iteration(self, context: Any, event: Any = None) -> Any:
        waited = event.get("previous") if isinstance(event, dict) else None
        if waited is not None:
            self.log.info("iteration %s ended (%s): this iteration starts", waited, event.get("state"))
        return self._run(context)

    def _window(self, ti: Any) -> int:
        """How many iterations may run at once: 1 for a sequential loop, else the loop's
        evaluated ``parallelism`` (pushed by the items task)."""
        loop = self.loop_gate.value if self.loop_gate is not None else None
        if not isinstance(loop, ForloopFlow) or not loop.parallel:
            return 1
        width = ti.xcom_pull(task_ids=self.items_task_id, key=PARALLELISM_KEY)
        return width if isinstance(width, int) and width >= 1 else ti.map_index + 1

    def _run(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.outcomes import OutcomeKind, StepOutcome
        from airflow_openflow.runtime.step import run_step

        ti = context["ti"]
        sequential = self.loop_gate is not None and not getattr(self.loop_gate.value, "parallel", False)
        if sequential and ti.map_index > 0:
            ended = self._loop_ended_before(context)
            if ended:
                self._skip_later_iterations(ti)
                return self.finish(context, StepOutcome(OutcomeKind.CONTAINER_ENDED, None, ended))
        if self.after_branch is not None:
            ended = self._branchall_ended_before(ti)
            if ended:
                skip_tasks(list(self.later_branch_task_ids))
                return self.finish(context, StepOutcome(OutcomeKind.CONTAINER_ENDED, None, ended))
        if self.plan.branch_choice is not None:  # the first step of a branchone branch on tasks
            chooser, index = self.plan.branch_choice
            if ti.xcom_pull(task_ids=chooser, key="return_value") != index:
                not_chosen = StepOutcome(OutcomeKind.CONTAINER_ENDED, None, "its branch was not chosen")
                return self.finish(context, not_chosen)
        earlier = self.plan.previous_step_id
        if earlier is not None:
            task_id = (self.plan.iteration_task_ids or {})[earlier]
            kind = ti.xcom_pull(task_ids=task_id, key=OUTCOME_KEY, map_indexes=ti.map_index)
            ended_kinds = (OutcomeKind.STOPPED, OutcomeKind.STOPPED_SKIPPED, OutcomeKind.CONTAINER_ENDED)
            if kind in {k.value for k in ended_kinds}:
                message = "an earlier step of its iteration or branch stopped it"
                return self.finish(context, StepOutcome(OutcomeKind.CONTAINER_ENDED, None, message))
        ctx = AirflowStepContext(context, self.plan, iteration=self.iteration)
        outcome = run_step(self.module, ctx)
        sleeps_after = (OutcomeKind.SUCCESS, OutcomeKind.MOCKED, OutcomeKind.CONTINUED_ERROR)
        if self.module.sleep is not None and outcome.kind in sleeps_after:  # not after a skip or stop
            from airflow_openflow.runtime.step_context import sleep_seconds

            seconds = sleep_seconds(self.module.sleep, ctx, result=outcome.result)
            if seconds > 0:
                self._sleep_then_finish(context, outcome, seconds)
        return self.finish(context, outcome)

    def _sleep_then_finish(self, context: Any, outcome: Any, seconds: float) -> None:
        """The step's ``sleep``: its outcome and result are recorded now, then the task defers (no
        worker slot held) and its trigger ends it when the time is up, so the next step of the body
        starts after it."""
        from airflow_openflow.operators.sleep import sleep_or_defer

        result = self.finish(context, outcome)  # records the outcome; these kinds do not raise
        context["ti"].xcom_push(key="return_value", value=result)
        trigger = sleep_or_defer(seconds, self.log, self.plan.step_id)
        if trigger is not None:
            self.defer(trigger=trigger, method_name="after_sleep")

    def after_sleep(self, context: Any, event: Any = None) -> Any:
        # In process only (dag.test() resumes after an inline trigger), and for tasks deferred by
        # an earlier release: a deployment's trigger ends the task itself.
        ti = context["ti"]
        return ti.xcom_pull(task_ids=self.task_id, key="return_value", map_indexes=ti.map_index)

    def _skip_later_iterations(self, ti: Any) -> None:
        """Mark the rest of this iteration and every later one skipped in one call, rather than
        starting a worker for each of their tasks just to skip itself. Tasks already running are
        left alone by Airflow; they see the end of the loop themselves."""
        items = ti.xcom_pull(task_ids=self.items_task_id, key="return_value")
        count = len(items) if isinstance(items, list) else 0
        skip_tasks(
            [
                (task_id, index)
                for index in range(ti.map_index, count)
                for task_id in self.body_task_ids
                if (task_id, index) != (self.task_id, ti.map_index)
            ]
        )

    def _branchall_ended_before(self, ti: Any) -> str | None:
        """Why this branch of a sequential branchall does not run, or None."""
        from airflow_openflow.runtime.container_rules import ends_sequential_branchall

        assert self.after_branch is not None
        module, index, task_ids = self.after_branch
        value = module.value
        assert isinstance(value, BranchAll)
        branch = value.branches[index]
        where = f"branch {index} of branchall {module.id}"
        return _ended_at(ti, task_ids, -1, where, lambda body: ends_sequential_branchall(branch, body))

    def _loop_ended_before(self, context: Any) -> str | None:
        """Why this iteration does not run (the loop ended at an earlier one), or None."""
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.container_rules import ends_sequential_loop
        from airflow_openflow.runtime.step_context import step_scope

        loop = self.loop_gate
        assert loop is not None and isinstance(loop.value, ForloopFlow)
        value = loop.value
        # The loop's own scope (no ``iter``, no body results), as for the in-task loop.
        loop_plan = dataclasses.replace(self.plan, in_loop_iteration=False, iteration_task_ids=None)

        def ends(body: Any) -> bool:
            scope = step_scope(AirflowStepContext(context, loop_plan), result=body.result)
            return ends_sequential_loop(loop, value, body, scope)

        previous = context["ti"].map_index - 1
        where = f"iteration {previous} of loop {loop.id}"
        return _ended_at(context["ti"], self.body_task_ids, previous, where, ends)


def _ended_at(ti: Any, task_ids: Sequence[str], map_index: int, where: str, ends: Any) -> str | None:
    """Why the body after ``where`` (the previous iteration or branch of a sequential container)
    does not run, or None: ``where`` never ran, or ended the container earlier, or ended it now
    (``ends`` on its outcome: the container's own rule, from runtime/container_rules.py)."""
    from airflow_openflow.runtime.outcomes import OutcomeKind

    first = ti.xcom_pull(task_ids=task_ids[0], key=OUTCOME_KEY, map_indexes=map_index)
    if first is None:  # never ran: skipped with the rest, or a failure before the container
        return f"{where} did not run"
    if first == OutcomeKind.CONTAINER_ENDED.value:  # only the container ending cuts a body's first step
        return f"the container ended before {where}"
    body = body_outcome(ti, task_ids, map_index)
    return f"{where} ended the container ({body.kind})" if ends(body) else None


def body_outcome(ti: Any, task_ids: Sequence[str], map_index: int) -> BodyOutcome:
    """How a body (one iteration: ``map_index``; a branch: -1) ended: its last result, its stop,
    or its failure, from its tasks' outcomes."""
    from airflow_openflow.runtime.outcomes import (
        BodyKind,
        BodyOutcome,
        OutcomeKind,
        StepOutcome,
        outcome_kind,
    )

    def result(task_id: str) -> Any:
        return ti.xcom_pull(task_ids=task_id, key="return_value", map_indexes=map_index)

    last_id: str | None = None
    last_kind = None
    for task_id in task_ids:
        kind = outcome_kind(ti.xcom_pull(task_ids=task_id, key=OUTCOME_KEY, map_indexes=map_index))
        if kind is None:
            return BodyOutcome(BodyKind.FAILED, not_completed(task_id))
        if kind in (OutcomeKind.FAILED, OutcomeKind.ERROR_STOP):
            return BodyOutcome(BodyKind.FAILED, result(task_id))
        if kind is OutcomeKind.CONTAINER_ENDED:
            break
        last_id, last_kind = task_id, kind
        if kind in (OutcomeKind.STOPPED, OutcomeKind.STOPPED_SKIPPED):
            value = result(task_id)
            stop = StepOutcome(kind, value, f"stopped at {task_id}")
            return BodyOutcome(BodyKind.STOPPED, value, stop=stop)
    if last_id is None:
        return BodyOutcome(BodyKind.COMPLETED, None)
    if last_kind is OutcomeKind.CONTINUED_ERROR:
        return BodyOutcome(BodyKind.FAILED, result(last_id))
    return BodyOutcome(BodyKind.COMPLETED, result(last_id))


def not_completed(task_id: str) -> dict[str, Any]:
    message = f"task {task_id} did not complete; see its log in Airflow"
    return {"error": {"name": "StepDidNotComplete", "message": message}}
