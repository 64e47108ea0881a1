"""compile/: what the Airflow UI shows of a flow: display names from the document's summaries (the
ids stay as they are), the DAG's docs, and the approval request's subject and body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_openflow.compile import build_dag
from airflow_openflow.compile.flow import MAX_DOC_SOURCE
from airflow_openflow.compile.naming import MAX_DISPLAY_NAME, flow_display_name, step_display_name
from airflow_openflow.operators.approval import RESULT_PREVIEW_CHARS
from airflow_openflow.spec import load_flow


def step(step_id: str, summary: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "value": {"type": "identity"},
        **({"summary": summary} if summary else {}),
        **extra,
    }


DOCUMENT: dict[str, Any] = {
    "summary": "Order summary",
    "description": "Prices an order.",
    "value": {
        "modules": [
            step("total", "Price the order", suspend={"required_events": 1, "timeout": 60}),
            step("plain", sleep={"type": "static", "value": 1}),
            {
                "id": "each",
                "summary": "Each line",
                "value": {
                    "type": "forloopflow",
                    "iterator": {"type": "javascript", "expr": "[1, 2]"},
                    "parallel": True,
                    "modules": [step("line", "Price one line"), step("bare")],
                },
            },
            {
                "id": "all",
                "summary": "Both ways",
                "value": {
                    "type": "branchall",
                    "branches": [
                        {"summary": "fast", "modules": [step("x", "Go fast")]},
                        {"modules": [step("z")]},
                    ],
                },
            },
            {
                "id": "route",
                "value": {
                    "type": "branchone",
                    "branches": [{"expr": "true", "summary": "big orders", "modules": [step("y", "Big")]}],
                    "default": [step("d", "Small")],
                },
            },
        ],
        "failure_module": step("failure", "Tell someone"),
    },
}

NAMES = {
    "total": "Price the order",
    "total_approval": "Price the order: approval",
    "plain": "plain",
    "plain_sleep": "plain: sleep",
    "each_items": "Each line: items",
    "each_iterations.line": "Price one line",
    "each_iterations.bare": "bare",
    "each": "Each line",
    "all_branch_0.x": "Go fast",
    "all_branch_1.z": "z",
    "all": "Both ways",
    "route_choose": "route: choose a branch",
    "route_branch_0.y": "Big",
    "route_default.d": "Small",
    "route": "route",
    "failure": "Tell someone",
    "flow_result": "Flow result",
}


@pytest.fixture(scope="module")
def dag() -> Any:
    return build_dag(load_flow(DOCUMENT).flow, dag_id="f__shop__orders", flow_path="f/shop/orders")


def test_task_ids_stay_and_the_ui_shows_the_summaries(dag: Any) -> None:
    assert dag.dag_id == "f__shop__orders" and dag.dag_display_name == "Order summary"
    assert {t.task_id: t.task_display_name for t in dag.tasks} == NAMES


def test_loop_and_branch_groups_are_named_after_their_step_and_branch(dag: Any) -> None:
    groups = {g.group_id: g for g in dag.task_group.children.values() if hasattr(g, "children")}
    labels = {group_id: (g.label, g.tooltip) for group_id, g in groups.items()}
    assert labels["each_iterations"][0] == "Each line: iterations"
    assert labels["all_branch_0"] == ("Both ways: branch 1 (fast)", "fast")
    assert labels["all_branch_1"] == ("Both ways: branch 2", "")
    assert labels["route_branch_0"] == ("route: branch 1 (big orders)", "big orders")
    assert labels["route_default"][0] == "route: default branch"


def test_a_flow_without_summary_is_named_by_its_path_then_its_dag_id() -> None:
    flow = load_flow({"summary": "", "value": {"modules": [step("a")]}}).flow
    assert build_dag(flow, dag_id="f__x__y", flow_path="f/x/y").dag_display_name == "f/x/y"
    assert build_dag(flow, dag_id="f__x__y").dag_display_name == "f__x__y"
    # the DAG file's own setting wins
    assert build_dag(flow, dag_id="f__x__y", dag_display_name="Mine").dag_display_name == "Mine"


def test_display_names_are_one_bounded_line() -> None:
    assert step_display_name("  two\n lines ", "a") == "two lines"
    assert step_display_name("   ", "a") == "a"
    assert len(flow_display_name("x" * 1000)) == MAX_DISPLAY_NAME


def test_the_dag_docs_show_description_path_steps_and_the_document(tmp_path: Path) -> None:
    folder = tmp_path / "f" / "shop" / "orders.flow"
    folder.mkdir(parents=True)
    (folder / "flow.yaml").write_text(json.dumps(DOCUMENT, indent=2))  # JSON is YAML
    flow = load_flow(folder / "flow.yaml", root=tmp_path).flow
    doc = build_dag(flow, dag_id="f__shop__orders", flow_path="f/shop/orders").doc_md
    assert doc.startswith("# Order summary\n\nPrices an order.")
    assert "Windmill path: `f/shop/orders`" in doc
    assert "1. **Price the order** `total` (identity)" in doc and "\n2. `plain` (identity)" in doc
    block = doc[doc.index("### Flow document (`flow.yaml`)") :]
    assert "<details>" in block and block.endswith("</details>")
    assert '"summary": "Price the order"' in block  # the document as written


def test_the_document_in_the_docs_is_bounded_and_fenced(tmp_path: Path) -> None:
    big = {**DOCUMENT, "description": "```\n" + "word " * 10_000}
    path = tmp_path / "big.flow.json"
    path.write_text(json.dumps(big))
    doc = build_dag(load_flow(path).flow, dag_id="big").doc_md
    block = doc[doc.index("### Flow document") :]
    assert f"(first {MAX_DOC_SOURCE} characters only)" in block
    assert len(block) < MAX_DOC_SOURCE + 500
    assert "\n````json\n" in block  # a fence longer than any run of backticks in the text


class _Ti:
    dag_id = "f__shop__orders"
    run_id = "manual__1"

    def __init__(self, result: Any, map_index: int = -1) -> None:
        self.result = result
        self.map_index = map_index

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        assert (task_ids, key, map_indexes) == ("total", "return_value", self.map_index)
        return self.result


def test_the_approval_names_step_and_flow_and_shows_the_result_and_its_log(dag: Any) -> None:
    approval = dag.task_dict["total_approval"]
    assert approval.subject == "Approve “Price the order” of flow “Order summary”"
    # Summaries and results are never Jinja (only a loop iteration's item is resolved).
    assert approval.template_fields == ("iteration",)
    assert approval._request_subject(_Ti(None)) == approval.subject
    body = approval._request_body({"ti": _Ti({"total": 12, "note": "{{ bad }}"})})
    assert body.startswith("Step **Price the order** (`total`) of flow **Order summary** has run")
    assert '```json\n{"total": 12, "note": "{{ bad }}"}\n```' in body
    assert "/dags/f__shop__orders/runs/manual__1/tasks/total)" in body
    # In a loop iteration: the subject names it, the log link is that iteration's.
    approval.iteration = {"invoice": "A-17"}
    mapped = _Ti(7, map_index=3)
    assert approval._request_subject(mapped) == f'{approval.subject}, iteration 3 ({{"invoice": "A-17"}})'
    assert "/tasks/total/mapped/3) (task `total`, iteration 3, of this run)" in approval._request_body(
        {"ti": mapped}
    )
    long = approval._request_body({"ti": _Ti(["x" * 100] * 1000)})
    assert len(long) < RESULT_PREVIEW_CHARS + 1000 and "characters)" in long
