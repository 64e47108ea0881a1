"""A git-sync folder with a flow and its Windmill schedule file: the DAG's timetable, and a real
scheduled run whose inputs are the schedule's args (while a manual run keeps its conf)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

FLOW = """
summary: poll
value:
  modules:
    - id: a
      value:
        type: rawscript
        language: python3
        content: "def main(who, n):\\n    return f'hello {who} x{n}'\\n"
        input_transforms:
          who: {type: javascript, expr: flow_input.who}
          n: {type: javascript, expr: flow_input.n}
schema:
  type: object
  properties:
    who: {type: string, default: nobody}
    n: {type: integer, default: 1}
"""

# Weekdays at 09:00 in Paris; Windmill's cron has a leading seconds field.
SCHEDULE = """
schedule: 0 0 9 * * 1-5
timezone: Europe/Paris
script_path: f/examples/poll
is_flow: true
args:
  who: scheduler
  n: 3
enabled: true
"""


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    folder = repo / "f" / "examples"
    (folder / "poll.flow").mkdir(parents=True)
    (folder / "poll.flow" / "flow.yaml").write_text(textwrap.dedent(FLOW).lstrip())
    (folder / "poll.schedule.yaml").write_text(textwrap.dedent(SCHEDULE).lstrip())
    (repo / "wmill.yaml").write_text("defaultTs: bun\nincludes: ['f/**']\n")
    return repo


def test_the_timetable_runs_in_the_schedule_timezone(tmp_path: Path) -> None:
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    from airflow_openflow import load_openflow_dags

    dag = load_openflow_dags(_repo(tmp_path), strict=True)["f__examples__poll"]
    timetable = coerce_to_core_timetable(dag.timetable)
    restriction = TimeRestriction(
        earliest=pendulum.datetime(2026, 3, 27, tz="UTC"), latest=None, catchup=True
    )
    runs: list[Any] = []
    last = None
    for _ in range(3):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        assert info is not None
        runs.append(info.run_after)
        last = info.data_interval
    # Friday 27 March 2026 09:00 CET (UTC+1); then the clocks go forward on Sunday 29 March, so
    # Monday and Tuesday 09:00 are CEST (UTC+2). The weekend is skipped.
    assert [r.in_timezone("UTC").isoformat() for r in runs] == [
        "2026-03-27T08:00:00+00:00",
        "2026-03-30T07:00:00+00:00",
        "2026-03-31T07:00:00+00:00",
    ]
    assert {r.in_timezone("Europe/Paris").strftime("%H:%M") for r in runs} == {"09:00"}


def _scheduled_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make DAG.test create its run as the scheduler does: run_type SCHEDULED, no conf."""
    import airflow.models.dagrun as dagrun_module
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    def create_scheduled_run(*, dag: Any, logical_date: Any, run_after: Any, **kwargs: Any) -> Any:
        session = kwargs["session"]
        return dag.create_dagrun(
            run_id=dagrun_module.DagRun.generate_run_id(
                run_type=DagRunType.SCHEDULED, logical_date=logical_date, run_after=run_after
            ),
            logical_date=logical_date,
            data_interval=kwargs["data_interval"],
            run_after=run_after,
            conf=None,
            run_type=DagRunType.SCHEDULED,
            state=DagRunState.RUNNING,
            triggered_by=DagRunTriggeredByType.TIMETABLE,
            start_date=kwargs["start_date"],
            session=session,
        )

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", create_scheduled_run)


def test_a_scheduled_run_gets_the_schedule_args_and_a_manual_run_its_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_openflow

    flow = _repo(tmp_path) / "f" / "examples" / "poll.flow"

    manual = airflow_openflow.run_flow(flow, {})
    assert manual.status == "success", manual
    assert manual.run_id.startswith("manual__")
    assert manual.result == "hello nobody x1"  # the schema's defaults, not the schedule's args

    _scheduled_runs(monkeypatch)
    scheduled = airflow_openflow.run_flow(flow, {})
    assert scheduled.status == "success", scheduled
    assert scheduled.run_id.startswith("scheduled__")
    assert scheduled.result == "hello scheduler x3"
