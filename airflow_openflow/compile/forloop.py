"""``forloopflow`` with ``parallel: true`` at the top level: one task per iteration and body step.

``<id>_items`` evaluates the iterator; the mapped task group ``<id>_iterations`` runs each body
step per iteration (``map_index`` = iteration index); the task ``<id>`` collects the array. Loops
that must run strictly one iteration after another (sequential), that carry a ``retry`` (Windmill
re-runs the whole loop) or that sit inside another container run in one task (container.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow.sdk import TriggerRule, task_group

from airflow_openflow.compile.body import body_chain
from airflow_openflow.operators.loop import LoopCollectorOperator, LoopItemsOperator
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import FlowModule, ForloopFlow


def runs_on_tasks(module: FlowModule) -> bool:
    value = module.value
    return (
        isinstance(value, ForloopFlow)
        and value.parallel
        and (module.retry is None or not module.retry.max_retries)
    )


def build(module: FlowModule, plan: StepPlan, *, trigger_rule: Any) -> tuple[Any, Any]:
    """The loop's tasks: returns (first task, collector task)."""
    loop = module.value
    assert isinstance(loop, ForloopFlow)
    items = LoopItemsOperator(
        task_id=f"{module.id}_items",
        module=module,
        plan=plan,
        trigger_rule=trigger_rule,
        doc_md=f"Evaluates the iterator of loop `{module.id}`.",
    )
    group_id = f"{module.id}_iterations"
    width = _static_parallelism(loop)
    limits: dict[str, Any] = {"max_active_tis_per_dagrun": width} if width else {}
    bodies: list[Any] = []

    @task_group(group_id=group_id)  # type: ignore[untyped-decorator]
    def iterations(item: Any) -> None:
        bodies.extend(
            body_chain(
                loop.modules,
                plan,
                first_rule=TriggerRule.ALL_SUCCESS,
                where=f"loop `{module.id}` (one task instance per iteration)",
                iteration=item,
                **limits,
            )
        )

    iterations.expand(item=items.output)
    collector_plan = dataclasses.replace(
        plan, items_task_id=items.task_id, body_task_ids=tuple(t.task_id for t in bodies)
    )
    collector = LoopCollectorOperator(
        task_id=module.id,
        module=module,
        plan=collector_plan,
        trigger_rule=TriggerRule.ALL_DONE,
        doc_md=f"Loop `{module.id}`: the array of its iterations' results, in index order.",
    )
    items >> collector
    if bodies:
        bodies[-1] >> collector
    return items, collector


def _static_parallelism(loop: ForloopFlow) -> int | None:
    transform = loop.parallelism
    if transform is None or transform.kind != "static":
        return None
    value = transform.value
    return (
        int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1 else None
    )
