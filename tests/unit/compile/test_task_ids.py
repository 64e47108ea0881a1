"""compile/naming.py TaskIds: the tasks and task groups the compiler adds never collide with a step id.

Each test builds a flow whose step ids take a helper's default name; before TaskIds, ``validate``
said ok and building the DAG failed with ``DuplicateTaskIdFound``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_openflow.compile import build_dag
from airflow_openflow.compile.naming import TaskIds
from airflow_openflow.spec import load_flow


def step(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "identity"}, **extra}


def loop(step_id: str, *body: dict[str, Any]) -> dict[str, Any]:
    iterator = {"type": "javascript", "expr": "[1, 2]"}
    return {"id": step_id, "value": {"type": "forloopflow", "iterator": iterator, "modules": list(body)}}


def branchone(step_id: str, branch: list[dict[str, Any]], default: list[dict[str, Any]]) -> dict[str, Any]:
    value = {"type": "branchone", "branches": [{"expr": "true", "modules": branch}], "default": default}
    return {"id": step_id, "value": value}


def branchall(step_id: str, *branches: list[dict[str, Any]]) -> dict[str, Any]:
    value = {"type": "branchall", "branches": [{"modules": b} for b in branches]}
    return {"id": step_id, "value": value}


def dag_of(*modules: dict[str, Any], **value: Any) -> Any:
    loaded = load_flow({"summary": "S", "value": {"modules": list(modules), **value}})
    assert loaded.flow is not None, loaded.errors  # the document is valid: only building could fail
    return build_dag(loaded.flow, dag_id="x")


def test_reserve_keeps_a_free_name_and_appends_underscores_to_a_taken_one() -> None:
    names = TaskIds(["a", "a_items"])
    assert names.reserve("a_sleep") == "a_sleep"
    assert names.reserve("a_items") == "a_items_"
    assert names.reserve("a_items") == "a_items__"  # helpers never share an id either
    names.record(["g.x"])
    assert "g.x" in names and names.reserve("g.x") == "g.x_"


def test_a_step_named_like_a_loops_items_task() -> None:
    dag = dag_of(step("l_items"), loop("l", step("body")))
    assert dag.task_dict["l_items"].module.id == "l_items"  # the step keeps its id
    assert dag.task_dict["l_items_"].upstream_task_ids == {"l_items"}  # the iterator moved
    assert dag.task_dict["l_iterations.body"].upstream_task_ids == {"l_items_"}
    assert dag.task_dict["l"].plan.items_task_id == "l_items_"


def test_a_step_named_like_a_branchones_chooser() -> None:
    dag = dag_of(step("b_choose"), branchone("b", [step("x")], [step("d")]))
    assert dag.task_dict["b_choose"].module.id == "b_choose"
    assert dag.task_dict["b_choose_"].upstream_task_ids == {"b_choose"}
    assert dag.task_dict["b_branch_0.x"].plan.branch_choice == ("b_choose_", 0)
    assert dag.task_dict["b"].chooser_task_id == "b_choose_"


def test_a_step_named_like_a_branchones_branch_group() -> None:
    dag = dag_of(step("b_branch_0"), branchone("b", [step("x")], [step("d")]))
    assert dag.task_dict["b_branch_0"].module.id == "b_branch_0"
    assert dag.task_dict["b_branch_0_.x"].plan.branch_choice == ("b_choose", 0)
    assert "b_branch_0_" in dag.task_group_dict and "b_default" in dag.task_group_dict
    assert dag.task_dict["b"].branch_task_ids == {0: ["b_branch_0_.x"], -1: ["b_default.d"]}


def test_a_step_after_a_branchall_named_like_its_branch_group() -> None:
    dag = dag_of(branchall("b", [step("x0")], [step("x1")]), step("b_branch_1"))
    assert dag.task_dict["b_branch_1"].upstream_task_ids == {"b"}
    assert dag.task_dict["b"].branch_task_ids == [["b_branch_0.x0"], ["b_branch_1_.x1"]]


def test_a_nested_step_named_like_a_helper_counts_too() -> None:
    # Airflow would accept ``l_items`` next to ``a_branch_0.l_items``, but ``results.l_items`` must
    # mean the step: every step id of the document is reserved, nested ones included.
    dag = dag_of(branchall("a", [step("l_items")]), loop("l", step("body")))
    assert "a_branch_0.l_items" in dag.task_dict and "l_items_" in dag.task_dict
    assert "l_items" not in dag.task_dict


#: every name the compiler adds when nothing collides, for the flow ``every_helper`` builds
DEFAULT_HELPERS = [
    "skip_expr",
    "flow_result",
    "flow_cache",
    "s_approval",
    "s_sleep",
    "l_items",
    "l_iterations",
    "c_choose",
    "c_branch_0",
    "c_default",
    "a_branch_0",
    "a_branch_1",
]


def every_helper(*taken: str) -> dict[str, Any]:
    """A flow with every kind of helper task; ``taken`` are step ids spread over the flow."""
    squatters = [step(name) for name in taken]
    modules = [
        step("s", suspend={"required_events": 1, "timeout": 60}, sleep={"type": "static", "value": 1}),
        loop("l", step("lb")),
        branchone("c", [step("cx")], [step("cd")]),
        # half of the squatters nested in a branch, the other half at the top level
        branchall("a", [step("a0"), *squatters[::2]], [step("a1")]),
        *squatters[1::2],
    ]
    value = {
        "modules": modules,
        "skip_expr": "false",
        "cache_ttl": 60,
        "preprocessor_module": {  # a preprocessor is a script
            "id": "preprocessor",
            "value": {
                "type": "rawscript",
                "language": "python3",
                "content": "def main(event):\n    return event\n",
            },
        },
        "failure_module": step("failure"),
    }
    return {"summary": "every helper", "value": value}


def test_steps_taking_every_default_helper_name(tmp_path: Path) -> None:
    from airflow_openflow import load_openflow_dags

    (tmp_path / "plain.flow.json").write_text(json.dumps(every_helper()))
    (tmp_path / "hostile.flow.json").write_text(json.dumps(every_helper(*DEFAULT_HELPERS)))
    dags = load_openflow_dags(tmp_path, strict=True)
    plain, hostile = dags["plain"], dags["hostile"]
    assert set(DEFAULT_HELPERS) <= set(plain.task_ids) | set(plain.task_group_dict)
    hostile_ids = set(hostile.task_ids) | set(hostile.task_group_dict)
    for name in DEFAULT_HELPERS:  # each helper moved aside, by one "_"
        assert f"{name}_" in hostile_ids, name
    # the steps kept their ids, at the top level or in their branch group
    assert {"a_branch_0_.skip_expr", "a_branch_0_.flow_cache", "flow_result", "s_approval"} <= hostile_ids
    final = hostile.task_dict["flow_result_"]
    assert final.step_ids[:3] == ["preprocessor", "skip_expr_", "s"]
    assert final.failure_step_id == "failure"
    assert hostile.task_dict["s"].plan.approval_task_id == "s_approval_"
    # the plain flow's tasks are the hostile flow's, with every helper (and its group's tasks) renamed
    assert {aside(task_id) for task_id in plain.task_ids} <= set(hostile.task_ids)


def aside(task_id: str) -> str:
    """The id a task of ``every_helper()`` has in ``every_helper(*DEFAULT_HELPERS)``."""
    group, _, own = task_id.rpartition(".")
    if group:
        return f"{aside(group)}.{own}"
    return f"{task_id}_" if task_id in DEFAULT_HELPERS else task_id
