"""Windmill scripts that ``import wmill`` run unchanged, through real DAG runs (``run_flow``):
flow user state, trigger state across runs, variables and resources, ids, and workflows as code
with checkpoints that survive a killed task process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import airflow_openflow
from tests.flows import flow, script


def xcoms(run: Any, key: str) -> dict[str, Any]:
    """XComs of the run with ``key``, by task (``task[map_index]`` for mapped ones): what the
    Airflow UI's XCom tab shows."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id, XComModel.key == key
            )
        ).all()
        named = {row: row.task_id if row.map_index < 0 else f"{row.task_id}[{row.map_index}]" for row in rows}
        return {name: XComModel.deserialize_value(row) for row, name in named.items()}


ADD_TO_TOTAL = """\
import wmill

def main(v):
    seen = wmill.get_flow_user_state("total")
    wmill.set_flow_user_state("total", seen + v)
    return seen
"""


def test_flow_user_state_latest_write_wins_and_later_steps_see_it_in_loops_too() -> None:
    start = script("start", "import wmill\n\ndef main():\n    wmill.set_flow_user_state('total', 100)\n")
    loop = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "javascript", "expr": "[1, 2, 3]"},
            "skip_failures": False,
            "modules": [script("add", ADD_TO_TOTAL, v="flow_input.iter.value")],
        },
    }
    read = (
        "import wmill\n\ndef main():\n"
        "    return [wmill.get_flow_user_state('total'), wmill.get_flow_user_state('never_set')]\n"
    )
    run = airflow_openflow.run_flow(flow(start, loop, script("end", read)), {})
    assert run.status == "success", run.result
    assert run.result == [106, None]
    # Each iteration (its own task instance) saw the write of the one before it.
    assert run.task_states["loop_iterations.add[2]"] == "success"
    # The state is an XCom of the task that wrote it, visible in the Airflow UI.
    written = xcoms(run, "flow_user_state.total")
    assert written["start"]["value"] == 100
    assert sorted(entry["value"] for entry in written.values()) == [100, 101, 103, 106]


def test_flow_user_state_inside_a_loop_that_runs_in_one_task() -> None:
    # A while loop runs inside one task: each iteration's step sees the last write.
    body = script(
        "tick",
        "import wmill\n\ndef main():\n"
        "    n = (wmill.get_flow_user_state('n') or 0) + 1\n"
        "    wmill.set_flow_user_state('n', n)\n"
        "    return n\n",
    )
    body["stop_after_if"] = {"expr": "result >= 3"}
    loop = {"id": "loop", "value": {"type": "whileloopflow", "skip_failures": False, "modules": [body]}}
    read = "import wmill\n\ndef main():\n    return wmill.get_flow_user_state('n')\n"
    run = airflow_openflow.run_flow(flow(loop, script("end", read)), {})
    assert (run.status, run.result) == ("success", 3)


def test_a_state_value_that_is_not_json_fails_the_step_naming_the_key_and_type() -> None:
    bad = script("bad", "import wmill\n\ndef main():\n    wmill.set_flow_user_state('tags', {'a', 'b'})\n")
    run = airflow_openflow.run_flow(flow(bad), {})
    assert run.status == "failure"
    error = run.result["error"]
    assert error["name"] == "TypeError"
    assert "flow user state 'tags'" in error["message"] and "(set)" in error["message"]


EXAMPLE = Path(__file__).resolve().parents[2] / "dags" / "flows" / "f" / "examples" / "poll_new_orders.flow"


def test_trigger_state_persists_across_runs_so_a_poller_stops_when_nothing_is_new(tmp_path: Path) -> None:
    # The shipped example: a scheduled trigger flow that keeps a cursor with wmill.get_state/set_state.
    (tmp_path / "001.json").write_text('{"items": ["tea", "cake"]}')
    (tmp_path / "002.json").write_text('{"items": ["jam"]}')
    first = airflow_openflow.run_flow(EXAMPLE, {"inbox": str(tmp_path)})
    assert (first.status, first.result) == ("success", {"orders": 2, "items": 3})

    again = airflow_openflow.run_flow(EXAMPLE, {"inbox": str(tmp_path)})
    assert again.status == "success" and again.skipped  # nothing new: the flow stops at the trigger
    assert again.task_states["count"] == "skipped"

    (tmp_path / "003.json").write_text('{"items": ["bread", "milk", "eggs", "salt"]}')
    more = airflow_openflow.run_flow(EXAMPLE, {"inbox": str(tmp_path)})
    assert more.result == {"orders": 1, "items": 4}

    # Windmill's state path <flow path>/<step>_<trigger> names the Airflow Variable holding it.
    keys = [v.key for v in _variables() if v.key.startswith("openflow_state__")]
    assert "openflow_state__poll_new_orders__new_orders_user" in keys


def _variables() -> list[Any]:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(Variable)).all())


@pytest.fixture
def secrets_in_environment() -> Iterator[None]:
    """A Variable and a Connection as a deployment provides them (the executor inherits them)."""
    values = {
        "AIRFLOW_VAR_F__TEAM__GREETING": "hello",
        "AIRFLOW_CONN_F__TEAM__WAREHOUSE": (
            '{"conn_type": "postgres", "host": "db.internal", "login": "etl", '
            '"password": "s3cr3t-pw-771", "extra": {"sslmode": "require"}}'
        ),
    }
    os.environ.update(values)
    try:
        yield
    finally:
        for key in values:
            os.environ.pop(key, None)


VARIABLES_AND_RESOURCES = """\
import wmill

def main():
    db = wmill.get_resource("f/team/warehouse")
    print("connecting with", db)
    wmill.set_variable("f/team/last_run", "ok")
    wmill.set_resource("f/team/cursor", {"table": "events", "position": 7}, "state")
    return {
        "greeting": wmill.get_variable("f/team/greeting"),
        "host": db["host"], "user": db["user"], "sslmode": db["sslmode"],
        "password_len": len(db["password"]),
        "last_run": wmill.get_variable("f/team/last_run"),
        "cursor": wmill.get_resource("f/team/cursor"),
        "absent": wmill.get_resource("f/team/nothing", none_if_undefined=True),
    }
"""


def test_variables_and_resources_are_airflow_variables_and_connections(secrets_in_environment: None) -> None:
    # The executor: only task processes write task log files.
    run = airflow_openflow.run_flow(flow(script("use", VARIABLES_AND_RESOURCES)), {}, mode="executor")
    assert run.status == "success", run.result
    assert run.result == {
        "greeting": "hello",
        "host": "db.internal",
        "user": "etl",
        "sslmode": "require",
        "password_len": 13,
        "last_run": "ok",
        "cursor": {"table": "events", "position": 7},
        "absent": None,
    }
    # The Connection's password never reaches the task log, even when the script prints it.
    log = _task_log(run, "use")
    assert "connecting with" in log and "s3cr3t-pw-771" not in log and "***" in log


def _task_log(run: Any, task_id: str) -> str:
    home = Path(os.environ["AIRFLOW_HOME"])
    files = sorted((home / "logs").glob(f"dag_id={run.dag_id}/run_id={run.run_id}/task_id={task_id}/*.log"))
    assert files, f"no log for {task_id}"
    return "".join(f.read_text(errors="replace") for f in files)


IDS = """\
import os
import wmill

def main():
    return {
        "workspace": wmill.get_workspace(),
        "root": wmill.get_root_job_id(),
        "job": wmill.get_job_id(),
        "step_env": os.environ.get("WM_FLOW_STEP_ID"),
        "state_path": wmill.get_state_path(),
    }
"""


def test_ids_workspace_and_windmill_environment() -> None:
    run = airflow_openflow.run_flow(
        flow(script("one", IDS), script("two", "def main(x):\n    return x\n", x="results.one"))
    )
    assert run.status == "success"
    assert run.result["workspace"] == "airflow"
    assert run.result["root"] == run.run_id  # the root job is the DAG run
    assert run.result["job"] and run.result["job"] != run.run_id
    assert run.result["step_env"] == "one"
    assert run.result["state_path"].endswith("/one_user")


def test_an_sdk_function_airflow_cannot_answer_fails_clearly_when_called() -> None:
    code = (
        "import wmill\nfrom wmill import run_script_by_path\n\n"
        "def main():\n    return run_script_by_path('f/x')\n"
    )
    run = airflow_openflow.run_flow(flow(script("calls", code)), {})
    assert run.status == "failure"
    error = run.result["error"]
    assert error["name"] == "WmillNotSupported"
    assert "not supported on Airflow: wmill.run_script_by_path" in error["message"]


WORKFLOW = """\
import os
import pathlib
import signal

from wmill import task, workflow

CALLS = pathlib.Path({calls!r})
KILLED = pathlib.Path({killed!r})


def note(name):
    with CALLS.open("a") as f:
        f.write(name + "\\n")


@task
def fetch():
    note("fetch")
    return [1, 2, 3]


@task()
def transform(rows):
    note("transform")
    if not KILLED.exists():
        KILLED.write_text("once")
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-workflow
    return [r * 10 for r in rows]


@task(tag="heavy")
def load(rows):
    note("load")
    return sum(rows)


@workflow
def main():
    return load(transform(fetch()))
"""


def test_workflow_as_code_replays_finished_sub_tasks_after_the_task_process_is_killed(tmp_path: Path) -> None:
    calls, killed = tmp_path / "calls.txt", tmp_path / "killed"
    step = script("etl", WORKFLOW.format(calls=str(calls), killed=str(killed)))
    step["retry"] = {"constant": {"attempts": 1, "seconds": 1}}
    # The executor: in process, the killed process would be the caller's.
    run = airflow_openflow.run_flow(flow(step), {}, mode="executor")
    assert (run.status, run.result) == ("success", 60)
    # fetch finished before the kill: replayed from its checkpoint, not run again. transform died
    # mid-call, so it ran twice; load ran once.
    assert calls.read_text().split() == ["fetch", "transform", "transform", "load"]
    (records,) = xcoms(run, "openflow_sub_tasks.etl").values()
    assert [(r["name"], r["status"]) for r in records] == [
        ("fetch", "replayed"),
        ("transform", "success"),
        ("load", "success"),
    ]


def test_workflow_as_code_replays_after_a_failure_and_a_finished_step_starts_afresh(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    code = (
        "import pathlib\nfrom wmill import task\n\n"
        f"CALLS = pathlib.Path({str(calls)!r})\n\n"
        "@task\ndef first():\n    CALLS.open('a').write('first\\n')\n    return 'one'\n\n"
        "@task\ndef flaky():\n"
        "    CALLS.open('a').write('flaky\\n')\n"
        "    if CALLS.read_text().count('flaky') < 2:\n"
        "        raise ConnectionError('the API is down')\n"
        "    return 'two'\n\n"
        "def main():\n    return [first(), flaky()]\n"
    )
    step = script("wac", code)
    step["retry"] = {"constant": {"attempts": 2, "seconds": 1}}
    run = airflow_openflow.run_flow(flow(step), {})
    assert (run.status, run.result) == ("success", ["one", "two"])
    assert calls.read_text().split() == ["first", "flaky", "flaky"]
    # A new run of the flow runs everything again: checkpoints belong to one task instance.
    again = airflow_openflow.run_flow(flow(step), {})
    assert again.status == "success"
    assert calls.read_text().split() == ["first", "flaky", "flaky", "first", "flaky"]
