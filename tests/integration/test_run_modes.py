"""``run_flow``'s two modes: tasks in process (``dag.test()``) or through the executor. Which mode a
flow gets, and that both give the same outcome and the same task states in the metadata DB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import airflow_openflow
from airflow_openflow.run_modes import planned_mode
from tests.flows import counting, flow, py


def _fails_once(path: Path) -> dict[str, Any]:
    step = py(
        "flaky",
        counting(str(path), "if len(p.read_text()) < 2:\n    raise ValueError('first try')\nreturn 'ok'"),
    )
    step["retry"] = {"constant": {"attempts": 2, "seconds": 1}}
    return step


def _documents(tmp: Path) -> dict[str, dict[str, Any]]:
    slow = py("slow", "import time\ntime.sleep(60)\nreturn 1")
    slow["timeout"] = {"type": "static", "value": 1}
    stop = py("a", "return x")
    stop["stop_after_if"] = {"expr": "result > 1", "skip_if_stopped": True}
    return {
        "linear": flow(py("a", "return x + 1", x="flow_input.x"), py("b", "return v * 2", v="results.a")),
        "retry_with_delay": flow(_fails_once(tmp / "tries")),
        "timeout_kills_the_step": flow(slow, py("after", "return 'never'")),
        "failure_then_failure_module": {
            **flow(py("boom", "raise RuntimeError('no')")),
            "value": {
                "modules": [py("boom", "raise RuntimeError('no')")],
                "failure_module": py("failure", "return 'handled'"),
            },
        },
        "early_stop_skips_the_rest": flow(
            {
                **stop,
                "value": {
                    **stop["value"],
                    "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.x"}},
                },
            },
            py("b", "return 'not reached'"),
        ),
        "sleep": flow({**py("a", "return 1"), "sleep": {"type": "static", "value": 1}}, py("b", "return 2")),
        "branchone": flow(
            {
                "id": "choose",
                "value": {
                    "type": "branchone",
                    "branches": [{"expr": "flow_input.x > 5", "modules": [py("big", "return 'big'")]}],
                    "default": [py("small", "return 'small'")],
                },
            }
        ),
    }


def _comparable(result: Any) -> Any:
    """A failure's error without its stack (file paths and line numbers of the process)."""
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        error = {k: v for k, v in result["error"].items() if k != "stack"}
        return {**result, "error": error}
    return result


@pytest.mark.parametrize(
    "name",
    [
        "linear",
        "retry_with_delay",
        "timeout_kills_the_step",
        "failure_then_failure_module",
        "early_stop_skips_the_rest",
        "sleep",
        "branchone",
    ],
)
def test_both_modes_give_the_same_result_and_task_states(name: str, tmp_path: Path) -> None:
    outcomes = []
    for mode in ("in_process", "executor"):
        folder = tmp_path / mode
        folder.mkdir()
        document = _documents(folder)[name]
        assert planned_mode(document) == "in_process"
        outcome = airflow_openflow.run_flow(document, {"x": 7}, mode=mode)
        assert outcome.mode == mode
        outcomes.append(outcome)
    in_process, executor = outcomes
    assert (in_process.status, _comparable(in_process.result)) == (
        executor.status,
        _comparable(executor.result),
    )
    assert in_process.task_states == executor.task_states
    assert in_process.skipped == executor.skipped


def test_a_step_timeout_still_stops_the_script_in_process(tmp_path: Path) -> None:
    document = _documents(tmp_path)["timeout_kills_the_step"]
    outcome = airflow_openflow.run_flow(document, {}, mode="in_process")
    assert outcome.status == "failure"
    assert outcome.result["error"]["name"] == "TimeoutError"
    assert outcome.task_states["after"] in ("upstream_failed", "skipped")


def test_auto_runs_in_process_unless_the_flow_needs_the_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    linear = flow(py("a", "return 1"))
    approval = flow(py("a", "return 1"), {**py("b", "return 2"), "suspend": {"required_events": 1}})
    parallel = flow(
        {
            "id": "both",
            "value": {
                "type": "branchall",
                "parallel": True,
                "branches": [{"modules": [py("x", "return 1")]}, {"modules": [py("y", "return 2")]}],
            },
        }
    )
    assert planned_mode(linear) == "in_process"
    assert planned_mode(linear, "executor") == "executor"
    assert planned_mode(approval) == "executor"
    assert planned_mode(parallel) == "executor"
    with pytest.raises(ValueError, match="cannot run in process"):
        planned_mode(approval, "in_process")
    with pytest.raises(ValueError, match="cannot run in process"):
        airflow_openflow.run_flow(approval, {}, mode="in_process")
    monkeypatch.setenv("OPENFLOW_RUN_MODE", "executor")
    assert planned_mode(linear) == "executor"
    monkeypatch.setenv("OPENFLOW_RUN_MODE", "fast")
    with pytest.raises(ValueError, match="OPENFLOW_RUN_MODE"):
        planned_mode(linear)
    with pytest.raises(ValueError, match="mode must be one of"):
        airflow_openflow.run_flow(linear, {}, mode="threads")
