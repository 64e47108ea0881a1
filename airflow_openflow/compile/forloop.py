"""``forloopflow`` at the top level: one task per iteration and body step.

``<id>_items`` evaluates the iterator; the mapped task group ``<id>_iterations`` runs each body
step per iteration (``map_index`` = iteration index); the task ``<id>`` collects the array. (Those
names get a ``_`` appended when a step already has them: naming.TaskIds.)

A parallel loop's ``parallelism`` caps the iterations under way: a static one is the body steps'
``max_active_tis_per_dagrun``, and for an expression, or a body of several steps, iteration i
also waits until iteration i - parallelism has finished.

A sequential loop (``parallel`` false or absent) uses the same tasks, but Airflow would interleave
the steps of a mapped group across iterations: the first step of iteration i waits until the last
step of iteration i - 1 has finished, and skips itself when the loop ended there (a failure, a
stop, the loop's ``stop_after_if``), so iterations run strictly in index order and stop where
Windmill stops.

Such a waiting first step starts in the triggerer (``compile/body.py``,
``EarlierIterationTrigger``): no worker slot is held while it waits, and it runs as soon as the
iteration it waits for has ended. Loops that carry a ``retry`` (Windmill re-runs the whole loop
from iteration 0) or that sit inside another container run in one task (runtime/container_runner.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow.sdk import TriggerRule, task_group

from airflow_openflow.compile.body import body_chain
from airflow_openflow.compile.naming import TaskIds, helper_display_name
from airflow_openflow.compile.task import display_name
from airflow_openflow.operators.loop import LoopCollectorOperator, LoopItemsOperator
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import FlowModule, ForloopFlow, asks_approval
from airflow_openflow.spec.support import container_on_tasks


def runs_on_tasks(module: FlowModule) -> bool:
    return isinstance(module.value, ForloopFlow) and container_on_tasks(module)


def build(module: FlowModule, plan: StepPlan, *, trigger_rule: Any, names: TaskIds) -> tuple[Any, Any]:
    """The loop's tasks: returns (first task, collector task). ``names``: the DAG's ids so far."""
    loop = module.value
    assert isinstance(loop, ForloopFlow)
    name = display_name(module)
    mode = "parallel" if loop.parallel else "sequential"
    items = LoopItemsOperator(
        task_id=names.reserve(f"{module.id}_items"),
        task_display_name=helper_display_name(name, "items"),
        module=module,
        plan=plan,
        trigger_rule=trigger_rule,
        # "(sequential)" / "(parallel)": `airflow-openflow restart --iteration` reads it (restart.py).
        doc_md=f"Evaluates the iterator of loop `{module.id}` ({mode}).",
    )
    group_id = names.reserve(f"{module.id}_iterations")
    width = _static_parallelism(loop) if loop.parallel else None
    limits: dict[str, Any] = {"max_active_tis_per_dagrun": width} if width else {}
    bodies: list[Any] = []

    @task_group(  # type: ignore[untyped-decorator]
        group_id=group_id,
        group_display_name=helper_display_name(name, "iterations"),
        tooltip=f"Loop {name}: one mapped instance of each body step per iteration",
    )
    def iterations(item: Any) -> None:
        bodies.extend(
            body_chain(
                loop.modules,
                plan,
                first_rule=TriggerRule.ALL_SUCCESS,
                where=f"loop `{module.id}` (one task instance per iteration)",
                iteration=item,
                loop_gate=(module, items.task_id) if _gated(loop) else None,
                **limits,
            )
        )

    iterations.expand(item=items.output)
    names.record(t.task_id for t in bodies)
    collector_plan = dataclasses.replace(
        plan, items_task_id=items.task_id, body_task_ids=tuple(t.task_id for t in bodies)
    )
    collector = LoopCollectorOperator(
        task_id=module.id,
        task_display_name=name,
        module=module,
        plan=collector_plan,
        trigger_rule=TriggerRule.ALL_DONE,
        doc_md=f"Loop `{module.id}`: the array of its iterations' results, in index order.",
    )
    items >> collector
    if bodies:
        bodies[-1] >> collector
    return items, collector


def _gated(loop: ForloopFlow) -> bool:
    """Iterations wait for earlier ones: all of a sequential loop's, and those of a parallel loop
    with a ``parallelism``, unless it is static and the body has one step (then the step's
    ``max_active_tis_per_dagrun`` is the cap; with more steps it caps each step's task instances,
    not the iterations under way: iteration 2 would start while 0 runs its second step, or waits
    for its approval)."""
    if not loop.parallel:
        return True
    if loop.parallelism is None:
        return False
    # An approval after a step is a task of the body too.
    tasks = len(loop.modules) + sum(asks_approval(m) for m in loop.modules)
    return loop.parallelism.kind != "static" or tasks > 1


def _static_parallelism(loop: ForloopFlow) -> int | None:
    transform = loop.parallelism
    if transform is None or transform.kind != "static":
        return None
    value = transform.value
    return (
        int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1 else None
    )
