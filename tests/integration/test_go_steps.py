"""Go steps through real DAG runs (``run_flow``), next to Python steps: arguments from input
transforms, the result read by a later step, retries, and an error failing the flow."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

import airflow_openflow
from tests.flows import flow, py

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain (golang-go)")

ORDER = """package inner

import "fmt"

type Line struct {
\tName  string  `json:"name"`
\tPrice float64 `json:"price"`
\tQty   int     `json:"qty"`
}

func main(customer string, lines []Line) (map[string]interface{}, error) {
\tif len(lines) == 0 {
\t\treturn nil, fmt.Errorf("no lines for %s", customer)
\t}
\ttotal := 0.0
\tfor _, l := range lines {
\t\ttotal += l.Price * float64(l.Qty)
\t}
\treturn map[string]interface{}{"customer": customer, "total": total, "count": len(lines)}, nil
}
"""


def _go(step_id: str, content: str, **transforms: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "value": {
            "type": "rawscript",
            "language": "go",
            "content": content,
            "input_transforms": {k: {"type": "javascript", "expr": v} for k, v in transforms.items()},
        },
    }


def test_a_go_step_between_python_steps() -> None:
    document = flow(
        py(
            "lines",
            "return [{'name': 'tea', 'price': 4.5, 'qty': 2}, {'name': 'cake', 'price': 3, 'qty': 1}]",
        ),
        _go("order", ORDER, customer="flow_input.customer", lines="results.lines"),
        py("done", "return f\"{o['customer']}: {o['total']:.2f} ({o['count']} lines)\"", o="results.order"),
    )
    outcome = airflow_openflow.run_flow(document, {"customer": "Ada"})
    assert outcome.status == "success", outcome.result
    assert outcome.result == "Ada: 12.00 (2 lines)"
    assert outcome.task_states["order"] == "success"


def test_a_go_error_fails_the_flow_with_its_message() -> None:
    outcome = airflow_openflow.run_flow(
        flow(_go("order", ORDER, customer="flow_input.customer", lines="[]")), {"customer": "Bob"}
    )
    assert outcome.status == "failure"
    assert outcome.result["error"]["message"] == "no lines for Bob"
    assert outcome.result["error"]["name"] == "Error"
