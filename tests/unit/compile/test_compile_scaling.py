"""compile/: what each step's plan holds stays O(1), so building a flow of n steps is linear.

Structural checks only (tests never assert timings; bench/parse_time.py prints the figures): the
tasks after a step are a tail of one shared tuple, the steps before it a prefix of one shared dict.
Before, every step held its own sorted tuple of the later task ids and its own frozenset of the
earlier ones (10 000 steps: ~50 million ids, 3.6 GB), computed by walking the rest of the graph
once per step.
"""

from __future__ import annotations

from typing import Any

from airflow_openflow.compile import build_dag
from airflow_openflow.operators.body import BodyStepOperator
from airflow_openflow.runtime.plan import PrefixIds, Tail
from airflow_openflow.spec import load_flow


def step(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "identity"}, **extra}


def mixed_flow(n: int) -> dict[str, Any]:
    """n rounds of: a step with a sleep, an approval step, a loop, a branchone, a sequential branchall."""
    modules: list[dict[str, Any]] = []
    for i in range(n):
        iterator = {"type": "javascript", "expr": "[1, 2]"}
        branches = [{"expr": "false", "modules": [step(f"bx{i}")]}]
        modules += [
            step(f"s{i}", sleep={"type": "static", "value": 1}),
            step(f"a{i}", suspend={"required_events": 1, "timeout": 60}),
            {
                "id": f"l{i}",
                "value": {"type": "forloopflow", "iterator": iterator, "modules": [step(f"lb{i}")]},
            },
            {
                "id": f"b{i}",
                "value": {"type": "branchone", "branches": branches, "default": [step(f"bd{i}")]},
            },
            {
                "id": f"p{i}",
                "value": {
                    "type": "branchall",
                    "parallel": False,
                    "branches": [
                        {"modules": [step(f"p{i}x"), step(f"p{i}y")]},
                        {"modules": [step(f"p{i}z")]},
                    ],
                },
            },
        ]
    value = {
        "modules": modules,
        "failure_module": step("failure"),
        "preprocessor_module": {  # a preprocessor is a script
            "id": "preprocessor",
            "value": {
                "type": "rawscript",
                "language": "python3",
                "content": "def main(event):\n    return event\n",
            },
        },
    }
    return {"summary": "mixed", "value": value}


def build(document: dict[str, Any]) -> Any:
    loaded = load_flow(document)
    assert loaded.flow is not None, loaded.errors
    return build_dag(loaded.flow, dag_id="x")


def test_each_step_holds_a_tail_of_one_shared_tuple_of_later_tasks() -> None:
    dag = build(mixed_flow(3))
    final = dag.task_dict["flow_result"]
    steps = [dag.task_dict[task_id] for task_id in final.step_ids]
    first = steps[0].plan.later_task_ids
    assert isinstance(first, Tail) and len(first.shared) == len(first)  # the first step: all of it
    for task in steps:
        later = task.plan.later_task_ids
        assert isinstance(later, Tail) and later.shared is first.shared
        # what the stop skips is unchanged: every task downstream but the failure module and flow_result
        downstream = set(task.get_flat_relative_ids(upstream=False)) - {"failure", "flow_result"}
        assert sorted(later) == sorted(downstream) and len(set(later)) == len(later)
    assert len(steps[-1].plan.later_task_ids) == 0


def test_each_step_sees_a_prefix_of_one_shared_dict_of_earlier_steps() -> None:
    dag = build(mixed_flow(3))
    final = dag.task_dict["flow_result"]
    shared = None
    for position, task_id in enumerate(final.step_ids):
        task = dag.task_dict[task_id]
        if task_id.endswith("_approval") or task_id == "preprocessor":
            continue  # they read the step they follow, not results.<id>
        visible = task.plan.visible_step_ids
        assert isinstance(visible, PrefixIds)
        shared = shared or visible.prefix.shared
        assert visible.prefix.shared is shared
        assert visible == set(final.step_ids[:position])


def test_the_steps_of_a_body_share_one_dict_and_sequential_branches_one_tuple() -> None:
    body = [step(f"b{i}") for i in range(5)]
    iterator = {"type": "javascript", "expr": "[1, 2]"}
    branches = [{"modules": [step(f"x{b}{i}") for i in range(3)]} for b in range(4)]
    document = {
        "summary": "S",
        "value": {
            "modules": [
                {"id": "l", "value": {"type": "forloopflow", "iterator": iterator, "modules": body}},
                {"id": "p", "value": {"type": "branchall", "parallel": False, "branches": branches}},
            ]
        },
    }
    dag = build(document)
    tasks = [dag.task_dict[f"l_iterations.b{i}"] for i in range(5)]
    assert all(isinstance(t, BodyStepOperator) for t in tasks)
    maps = [t.plan.iteration_task_ids for t in tasks]
    assert all(m.shared is maps[0].shared for m in maps)
    assert maps[3] == {f"b{i}": f"l_iterations.b{i}" for i in range(3)}
    firsts = [dag.task_dict[f"p_branch_{b}.x{b}0"] for b in range(4)]
    tails = [t.later_branch_task_ids for t in firsts]
    assert all(isinstance(t, Tail) and t.shared is tails[0].shared for t in tails)
    assert tails[2] == (
        "p_branch_2.x21",
        "p_branch_2.x22",
        "p_branch_3.x30",
        "p_branch_3.x31",
        "p_branch_3.x32",
    )


def test_a_long_flow_keeps_one_copy_of_its_task_ids() -> None:
    """2 000 steps: the plans together reference O(n) ids, not n²/2 (which was 2 million here)."""
    n = 2000
    dag = build({"summary": "S", "value": {"modules": [step(f"s{i}") for i in range(n)]}})
    plans = [dag.task_dict[f"s{i}"].plan for i in range(n)]
    tuples = {id(p.later_task_ids.shared) for p in plans}
    dicts = {id(p.visible_step_ids.prefix.shared) for p in plans}
    assert len(tuples) == 1 and len(dicts) == 1
    assert len(plans[0].later_task_ids.shared) == n - 1 and len(plans[-1].visible_step_ids) == n - 1
