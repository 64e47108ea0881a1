"""run_view.py: the short view of ``airflow-openflow run`` (no Airflow run: rows as the metadata
database gives them)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_openflow import run_view
from airflow_openflow.run_view import StepView, failure_lines, task_log_path

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ti(
    task_id: str, state: str | None, start: float, end: float | None, map_index: int = -1
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "map_index": map_index,
        "state": state,
        "start_date": T0 + timedelta(seconds=start),
        "end_date": None if end is None else T0 + timedelta(seconds=end),
        "try_number": 1,
    }


def test_a_line_per_step_and_one_for_all_iterations_of_a_loop_step() -> None:
    assert StepView.line("Price the order", [ti("total", "success", 0, 1.25)]) == (
        "  ok           1.2 s  Price the order"
    )
    iterations = [
        ti("l.b", "success", 0, 1, 0),
        ti("l.b", "failed", 0.5, 2, 1),
        ti("l.b", "success", 1, 3, 2),
    ]
    assert StepView.line("Price one line", iterations) == (
        "  FAILED       3.0 s  Price one line (3 iterations: 1 FAILED, 2 ok)"
    )


def test_the_view_writes_each_task_once_when_it_ended_in_end_order(monkeypatch: pytest.MonkeyPatch) -> None:
    rows: list[dict[str, Any]] = [ti("a", "success", 0, 2), ti("b", "running", 2, None)]
    monkeypatch.setattr("airflow_openflow.compat.metadata.latest_run_task_rows", lambda dag_id: ("r", rows))
    tasks = {"a": SimpleNamespace(task_id="a", task_display_name="Step A"), "b": SimpleNamespace(task_id="b")}
    dag = SimpleNamespace(dag_id="d", task_dict=tasks)
    out = io.StringIO()
    view = StepView(out, interval=3600)
    with view(dag):
        view._poll("d")
        view._poll("d")  # nothing new
        rows[1] = ti("b", "skipped", 2, 2.5)
    assert out.getvalue().splitlines() == ["  ok           2.0 s  Step A", "  skipped      0.5 s  b"]
    assert view.lines == 2


def _outcome(**fields: Any) -> Any:
    return SimpleNamespace(dag_id="d", run_id="manual__1+00:00", **fields)


def test_a_failure_names_the_step_its_message_and_its_log(tmp_path: Path) -> None:
    log = tmp_path / "dag_id=d" / "run_id=manual__1+00:00" / "task_id=g.b" / "map_index=1" / "attempt=1.log"
    log.parent.mkdir(parents=True)
    log.write_text("the task's log\n")
    outcome = _outcome(
        result={"error": {"name": "RuntimeError", "message": "nope\nmore", "step_id": "b"}},
        task_states={"a": "success", "g.b[1]": "failed", "flow_result": "failed"},
    )
    assert failure_lines(outcome, str(tmp_path)) == ["error in step b: nope", f"its log: {log}"]
    kept = tmp_path / "run.log"
    lines = failure_lines(outcome, str(tmp_path), kept)
    assert lines[1] == f"its log: at the end of {kept} (the run's temporary AIRFLOW_HOME is removed)"
    assert kept.read_text().endswith("the task's log\n")


def test_no_log_folder_or_no_file_names_no_log(tmp_path: Path) -> None:
    assert task_log_path(None, "d", "r", "a") is None
    assert task_log_path(str(tmp_path), "d", "r", "a") is None
    assert run_view.ENDED[0] == "success"
