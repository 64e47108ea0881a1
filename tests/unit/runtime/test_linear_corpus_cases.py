"""Linear corpus cases run step by step with the runtime pieces only (no Airflow).

For flows made only of top-level rawscripts (cases 026, 029, 030, 031, 032, 037), evaluating each
step's transforms and running its script in order must give the case's expected result. This checks
expressions and script runners together against the corpus; the real runs go through Airflow in
tests/conformance.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import pytest

from airflow_openflow.runtime.expressions import EvalScope, evaluate_transforms
from airflow_openflow.runtime.scripts import run_script
from airflow_openflow.spec.model import InputTransform

CASES_DIR = pathlib.Path(
    os.environ.get(
        "OPENFLOW_CONFORMANCE_DIR",
        pathlib.Path(__file__).resolve().parents[4] / "shared" / "conformance" / "cases",
    )
)
CASES = ["026", "029", "030", "031", "032", "037"]


def _case(number: str) -> dict[str, Any]:
    matches = sorted(CASES_DIR.glob(f"{number}_*.json"))
    if not matches:
        pytest.skip(f"conformance case {number} not found in {CASES_DIR}")
    data: dict[str, Any] = json.loads(matches[0].read_text(encoding="utf-8"))
    return data


def _transform(raw: dict[str, Any]) -> InputTransform:
    return InputTransform(kind=raw["type"], value=raw.get("value"), expr=raw.get("expr"))


@pytest.mark.parametrize("number", CASES)
def test_linear_case(number: str, tmp_path: pathlib.Path) -> None:
    case = _case(number)
    for run_index, run in enumerate(case["runs"]):
        flow_input = run["input"]
        results: dict[str, Any] = {}
        previous: Any = flow_input
        for module in case["flow"]["value"]["modules"]:
            value = module["value"]
            assert value["type"] == "rawscript"
            scope = EvalScope(flow_input=flow_input, previous_result=previous, results=results.get)
            transforms = {k: _transform(v) for k, v in value.get("input_transforms", {}).items()}
            args = evaluate_transforms(transforms, scope)
            workdir = tmp_path / f"{run_index}-{module['id']}"
            workdir.mkdir()
            previous = run_script(
                value["language"], value["content"], args, step_id=module["id"], workdir=workdir
            )
            results[module["id"]] = previous
        assert run["expect"]["status"] == "success"
        assert previous == run["expect"]["result"]
