"""A Windmill schedule file in a real deployment: the scheduler itself creates the flow's scheduled
runs, and each runs the flow with the schedule's ``args`` as its inputs (docs/schedules.md)."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.deployment import AirflowDeployment
from tests.integration.test_schedules import FLOW  # the same flow, run by the real scheduler

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "f__examples__tick"


# Every minute, at second 0 (Windmill's cron has a leading seconds field).
SCHEDULE = """\
schedule: 0 * * * * *
timezone: Etc/UTC
script_path: f/examples/tick
is_flow: true
args:
  who: scheduler
  n: 3
enabled: true
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    base = tmp_path_factory.mktemp("scheduled")
    dags = base / "dags"
    folder = dags / "flows" / "f" / "examples"  # a Windmill git-sync checkout as the flows folder
    (folder / "tick.flow").mkdir(parents=True)
    (folder / "tick.flow" / "flow.yaml").write_text(textwrap.dedent(FLOW).lstrip())
    (folder / "tick.schedule.yaml").write_text(SCHEDULE)
    (dags / "flows" / "wmill.yaml").write_text("defaultTs: bun\nincludes: ['f/**']\n")
    (dags / "openflow_dags.py").write_text((REPO / "dags" / "openflow_dags.py").read_text())
    (dags / ".airflowignore").write_text((REPO / "dags" / ".airflowignore").read_text())
    deployment = AirflowDeployment(base / "home", dags).start()
    try:
        yield deployment
    finally:
        deployment.stop()


def _first_scheduled_run(deployment: AirflowDeployment, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns?run_type=scheduled")["dag_runs"]
        if runs:
            return dict(runs[0])
        time.sleep(2)
    raise AssertionError(f"no scheduled run of {DAG_ID} in {timeout} s\n{deployment.log_tail('scheduler')}")


def test_the_scheduler_starts_a_run_with_the_schedule_args_as_inputs(deployment: AirflowDeployment) -> None:
    dag = deployment.wait_for_dag(DAG_ID)
    assert dag["timetable_summary"] == "* * * * *", dag["timetable_summary"]
    deployment.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
    # The next minute boundary after the DAG was parsed, plus a scheduler loop.
    run = _first_scheduled_run(deployment, timeout=100)
    run_id = run["dag_run_id"]
    assert run["run_type"] == "scheduled" and run_id.startswith("scheduled__")
    fired = datetime.fromisoformat(run["logical_date"].replace("Z", "+00:00"))
    assert (fired.second, fired.microsecond) == (0, 0), run["logical_date"]  # a cron time
    assert deployment.wait_for_run(DAG_ID, run_id, timeout=90) == "success"
    assert deployment.xcom(DAG_ID, run_id, "a") == "hello scheduler x3"
    assert deployment.xcom(DAG_ID, run_id, "flow_result") == "hello scheduler x3"


def test_a_run_triggered_by_hand_keeps_its_own_conf(deployment: AirflowDeployment) -> None:
    deployment.wait_for_dag(DAG_ID)
    run_id = deployment.trigger(DAG_ID, {"who": "me"})
    assert deployment.wait_for_run(DAG_ID, run_id, timeout=90) == "success"
    assert deployment.xcom(DAG_ID, run_id, "a") == "hello me x1"  # conf, then the schema's defaults
