"""The steps of a loop iteration or of a branch as a chain of tasks, in the current task group."""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow.sdk import TriggerRule
from airflow.sdk.definitions.param import ParamsDict

from airflow_openflow.compile.approval import approval_task
from airflow_openflow.compile.task import display_name, task_settings
from airflow_openflow.operators.body import BodyStepOperator
from airflow_openflow.runtime.plan import Prefix, StepPlan
from airflow_openflow.spec.model import FlowModule, asks_approval

#: The trigger a gated first step starts on, by class path (not imported at DAG-parse time).
EARLIER_ITERATION_TRIGGER = "airflow_openflow.triggers.waits.EarlierIterationTrigger"


def body_chain(
    modules: list[FlowModule],
    plan: StepPlan,
    *,
    first_rule: Any,
    where: str,
    iteration: Any = None,
    branch_choice: tuple[str, int] | None = None,
    loop_gate: tuple[FlowModule, str] | None = None,
    **task_kwargs: Any,
) -> list[Any]:
    """One task per step, chained in order (later steps ``none_failed``: a skipped step lets the
    body go on, a stop is seen by the next step itself). ``iteration`` is the mapped item of a loop
    iteration (None for a branch); ``branch_choice`` gates the first step of a branchone branch.
    Each step reads the earlier steps of its body by their task ids. ``loop_gate`` (the loop, the
    task evaluating its items): the body's first step waits until the iteration a window earlier
    has finished (sequential loops: the previous one, and it skips the rest of the loop when the
    loop ended there; parallel loops: ``parallelism`` earlier).

    A step with ``suspend`` is followed by its approval task (mapped with the iteration, so one
    request per iteration), which the next step of the body waits for."""
    tasks: list[Any] = []
    taken = {step.id for step in modules}  # approval task ids: unique within the body
    # step id -> (position, task id) of the body's steps so far: each plan sees a prefix of it
    before: dict[str, tuple[int, str]] = {}
    for position, step in enumerate(modules):
        # The first step of a gated body starts in the triggerer (``gate_on_earlier_iteration``):
        # no cap on it, as its deferred instances would count against the cap and hold it.
        gate = loop_gate is not None and position == 0
        step_plan = StepPlan(
            step_id=step.id,
            flow=plan.flow,
            previous_step_id=modules[position - 1].id if position else None,
            visible_step_ids=plan.visible_step_ids,
            iteration_task_ids=Prefix(before),
            in_loop_iteration=iteration is not None,
            branch_choice=branch_choice if position == 0 else None,
            resume_task_id=tasks[-1].task_id if tasks and asks_approval(modules[position - 1]) else None,
        )
        task = BodyStepOperator(
            task_id=step.id,
            module=step,
            plan=step_plan,
            iteration=iteration,
            trigger_rule=first_rule if position == 0 else TriggerRule.NONE_FAILED,
            doc_md=f"**{display_name(step)}**: step `{step.id}` of {where}.",
            task_display_name=display_name(step),
            **{**task_kwargs, **({"max_active_tis_per_dagrun": None} if gate else {})},
            **task_settings(step),
        )
        if tasks:
            tasks[-1] >> task
        tasks.append(task)
        before[step.id] = (position, task.task_id)  # the task id is prefixed with the group id
        if asks_approval(step):
            approval_id = f"{step.id}_approval"
            while approval_id in taken:
                approval_id += "_"
            taken.add(approval_id)
            approval_plan = dataclasses.replace(step_plan, iteration_task_ids=Prefix(before))
            approval = approval_task(
                step,
                approval_plan,
                approval_id,
                step_task_id=task.task_id,
                iteration=iteration,
                in_body=True,
                **task_kwargs,
            )
            task.plan = dataclasses.replace(task.plan, approval_task_id=approval.task_id)
            task >> approval
            tasks.append(approval)
    if loop_gate is not None and tasks:
        gate_on_earlier_iteration(tasks[0], loop_gate, tuple(task.task_id for task in tasks))
    return tasks


def gate_on_earlier_iteration(
    first: BodyStepOperator, loop_gate: tuple[FlowModule, str], body_task_ids: tuple[str, ...]
) -> None:
    """Make the first step of a gated loop body start in the triggerer, on
    ``EarlierIterationTrigger``, and run in a worker once the iteration it waits for has finished.

    Starting there (rather than deferring from a worker) leaves no earlier workload of the try, so
    the trigger may fire as soon as the earlier iteration ends: apache/airflow#72716 fails a resumed
    task only when the exit of the workload that deferred it is processed after the resume."""
    from airflow.triggers.base import StartTriggerArgs  # only for flows with such loops: parse time

    loop, items_task_id = loop_gate
    first.loop_gate, first.items_task_id, first.body_task_ids = loop, items_task_id, body_task_ids
    # The triggerer builds a task that starts there a template context from the serialized DAG,
    # validating the task's params against the run's conf; Airflow 3.3.2 fails that for the DAG
    # params every task carries (the serialized params are taken for values), and the error ends
    # the triggerer's runner process. Without params of its own the task gets the DAG's: the same
    # values everywhere (process_params merges the DAG's params and the run's conf).
    first.params = ParamsDict()
    first.start_from_trigger = True
    first.start_trigger_args = StartTriggerArgs(
        trigger_cls=EARLIER_ITERATION_TRIGGER,
        trigger_kwargs={
            "last_task_id": body_task_ids[-1],
            "items_task_id": items_task_id,
            "window": None if getattr(loop.value, "parallel", False) else 1,
        },
        next_method="after_previous_iteration",
        next_kwargs=None,
        timeout=None,
    )
