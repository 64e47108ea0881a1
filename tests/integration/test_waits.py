"""Waits on a real deployment (PostgreSQL, the scheduler with a LocalExecutor of 4 slots), and the
Airflow 3.3.2 race they are built around (apache/airflow#72716, docs/mapping.md#waits-and-airflow-332).

- The race is real here: a task that defers from a worker on a trigger that fires at once, and
  resumes in a worker, is failed by the scheduler ("state mismatch") when the resumed attempt runs
  before the scheduler has processed the exit of the workload that deferred. When Airflow fixes
  it, ``test_the_resume_race_of_airflow_3_3_2_is_real_here`` fails: the workarounds can then go.
- Our waits never fall into it: concurrent runs of sequential loops (more runs than slots;
  their iterations start in the triggerer and fire as soon as the iteration before has ended), a
  parallel loop with an expression ``parallelism``, sleeps (ended by their trigger) and a sub-flow
  step all succeed, every task instance on its first try, with no "state mismatch" in the audit
  log; a waiting iteration holds no worker slot (it is deferred, not running).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.flows import flow, py
from tests.integration.deployment import RESUME_RACE_DAG, AirflowDeployment
from tests.integration.test_deployment import CHILD_FLOW, PARENT_FLOW, STOPPING_PARENT_FLOW

REPO = Path(__file__).resolve().parents[2]

LOCAL_EXECUTOR = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}


def loop(
    loop_id: str, *, parallel: bool, items: str, body: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    value = {"type": "forloopflow", "parallel": parallel, "skip_failures": False, "modules": body, **extra}
    value["iterator"] = {"type": "javascript", "expr": items}
    return {"id": loop_id, "value": value}


# 6 iterations of one step, 4 of two steps (the second reads the first of its own iteration).
ONE_STEP = flow(
    loop(
        "l",
        parallel=False,
        items="[1, 2, 3, 4, 5, 6]",
        body=[py("add", "return v * 10", v="flow_input.iter.value")],
    ),
    summary="a sequential loop of one step",
)
TWO_STEPS = flow(
    loop(
        "l",
        parallel=False,
        items="[1, 2, 3, 4]",
        body=[
            py("first", "return v * s", v="flow_input.iter.value", s="flow_input.scale"),
            py("second", "return v + 1", v="results.first"),
        ],
    ),
    summary="a sequential loop of two steps",
    # A required input: the triggerer builds the waiting steps' context with the DAG's params.
    schema={"type": "object", "properties": {"scale": {"type": "integer"}}, "required": ["scale"]},
)
WINDOW = flow(
    loop(
        "l",
        parallel=True,
        items="[1, 2, 3, 4, 5]",
        parallelism={"type": "javascript", "expr": "1 + 1"},
        body=[py("work", "return v * 2", v="flow_input.iter.value")],
    ),
    summary="a parallel loop of at most two iterations at once",
)
_sleepy = py("a", "return 1")
_sleepy["sleep"] = {"type": "static", "value": 2}
SLEEP = flow(_sleepy, py("b", "return x + 1", x="results.a"), summary="a step, a 2 s sleep, a step")

FLOWS = {
    "one_step_loop": ONE_STEP,
    "two_step_loop": TWO_STEPS,
    "window_loop": WINDOW,
    "sleep_demo": SLEEP,
    "child_flow": CHILD_FLOW,
    "parent_flow": PARENT_FLOW,
    "stopping_parent_flow": STOPPING_PARENT_FLOW,
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    base = tmp_path_factory.mktemp("waits")
    dags = base / "dags"
    (dags / "flows").mkdir(parents=True)
    for name, document in FLOWS.items():
        (dags / "flows" / f"{name}.json").write_text(json.dumps(document))
    (dags / "resume_race_control.py").write_text(RESUME_RACE_DAG)
    (dags / "openflow_dags.py").write_text((REPO / "dags" / "openflow_dags.py").read_text())
    # The LocalExecutor: the CeleryExecutor keeps a task instance whose workload has not ended from
    # being queued again, which hides the race; the LocalExecutor of Airflow 3.3.2 does not.
    deployment = AirflowDeployment(base / "home", dags, extra_env=LOCAL_EXECUTOR).start()
    try:
        yield deployment
    finally:
        deployment.stop()


def _all_task_instances(deployment: AirflowDeployment, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    body = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
    return list(body["task_instances"])


def _loop_task_instances(deployment: AirflowDeployment) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every task instance of the runs of ``one_step_loop`` and ``two_step_loop``, by run, in one
    request."""
    body = deployment.api("GET", "/dags/~/dagRuns/~/taskInstances?dag_id_pattern=step_loop&limit=100")
    assert body["total_entries"] == len(body["task_instances"]), body["total_entries"]  # one page
    by_run: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for ti in body["task_instances"]:
        by_run.setdefault((ti["dag_id"], ti["dag_run_id"]), []).append(ti)
    return by_run


def _loop_run_states(deployment: AirflowDeployment) -> list[tuple[str, str, str]]:
    """(dag id, run id, state) of every run of ``one_step_loop`` and ``two_step_loop``."""
    body = deployment.api("GET", "/dags/~/dagRuns?dag_id_pattern=step_loop&limit=100")
    return [(run["dag_id"], run["dag_run_id"], run["state"]) for run in body["dag_runs"]]


def test_the_resume_race_of_airflow_3_3_2_is_real_here(deployment: AirflowDeployment) -> None:
    """Control: tasks resumed in a worker before the workload that deferred them has ended are
    failed by the scheduler ("state mismatch"). If this starts failing, Airflow fixed
    apache/airflow#72716 and the wait before a sub-flow step resumes can go."""
    deployment.wait_for_dag("resume_race_control")
    run_id = deployment.trigger("resume_race_control")
    deployment.wait_for_run("resume_race_control", run_id)
    states = {
        ti["task_id"]: ti["state"] for ti in _all_task_instances(deployment, "resume_race_control", run_id)
    }
    assert set(states.values()) == {"failed"}, states
    assert len(deployment.state_mismatches("resume_race_control")) == 3


def test_concurrent_sequential_loops_run_in_order_each_iteration_once(deployment: AirflowDeployment) -> None:
    """Three runs of a one-step loop and two of a two-step loop at once, on 4 executor slots: every
    run has the right result, every task instance ran once (try 1), the race never struck, and a
    waiting iteration was deferred (in the triggerer), never holding a slot while it waited."""
    deployment.wait_for_dag("one_step_loop")
    deployment.wait_for_dag("two_step_loop")
    runs = [("one_step_loop", deployment.trigger("one_step_loop")) for _ in range(3)]
    runs += [("two_step_loop", deployment.trigger("two_step_loop", {"scale": 10})) for _ in range(2)]
    seen_deferred = False
    most_first_steps_at_once = 0
    deadline = time.monotonic() + 300
    pending = set(runs)
    while pending and time.monotonic() < deadline:
        # Two requests for all five runs (not two per run): the API server shares the two cores
        # with the scheduler, the triggerer and the tasks whose latency this test waits on.
        by_run = _loop_task_instances(deployment)
        for dag_id, run_id in sorted(pending):
            tis = by_run.get((dag_id, run_id), [])
            first = "l_iterations.add" if dag_id == "one_step_loop" else "l_iterations.first"
            busy = [ti for ti in tis if ti["task_id"] == first and ti["state"] in ("queued", "running")]
            most_first_steps_at_once = max(most_first_steps_at_once, len(busy))
            seen_deferred |= any(ti["task_id"] == first and ti["state"] == "deferred" for ti in tis)
        for dag_id, run_id, state in _loop_run_states(deployment):
            if state in ("success", "failed"):
                pending.discard((dag_id, run_id))
        time.sleep(0.5)
    assert not pending, f"runs still going after 300 s: {pending}\n{deployment.log_tail('scheduler')}"
    for dag_id, run_id in runs:
        assert deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"] == "success"
        expected = [10, 20, 30, 40, 50, 60] if dag_id == "one_step_loop" else [11, 21, 31, 41]
        assert deployment.xcom(dag_id, run_id, "flow_result") == expected
        tries = {
            (ti["task_id"], ti["map_index"]): ti["try_number"]
            for ti in _all_task_instances(deployment, dag_id, run_id)
        }
        assert set(tries.values()) == {1}, tries
    assert seen_deferred  # iterations waited deferred, not in a worker
    assert most_first_steps_at_once <= 1  # one iteration of a sequential loop at a time
    assert deployment.state_mismatches("one_step_loop") == deployment.state_mismatches("two_step_loop") == []


def test_a_parallelism_window_and_a_sleep_end_without_the_race(deployment: AirflowDeployment) -> None:
    deployment.wait_for_dag("window_loop")
    deployment.wait_for_dag("sleep_demo")
    window = deployment.trigger("window_loop")
    sleep = deployment.trigger("sleep_demo")
    assert deployment.wait_for_run("window_loop", window) == "success"
    assert deployment.xcom("window_loop", window, "flow_result") == [2, 4, 6, 8, 10]
    assert deployment.wait_for_run("sleep_demo", sleep) == "success"
    assert deployment.xcom("sleep_demo", sleep, "flow_result") == 2
    tis = {ti["task_id"]: ti for ti in _all_task_instances(deployment, "sleep_demo", sleep)}
    assert tis["a_sleep"]["state"] == "success" and tis["a_sleep"]["try_number"] == 1
    assert tis["b"]["start_date"] >= tis["a_sleep"]["end_date"]
    assert deployment.state_mismatches("window_loop") == deployment.state_mismatches("sleep_demo") == []


def _run_caller(deployment: AirflowDeployment, dag_id: str, **conf: Any) -> str:
    """A successful run of ``dag_id``, a flow that calls ``child_flow`` (unpaused here)."""
    deployment.wait_for_dag("child_flow")
    deployment.api("PATCH", "/dags/child_flow", {"is_paused": False})
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id, conf)
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    return run_id


def test_a_sub_flow_step_ends_with_its_childs_result_as_soon_as_the_child_has_run(
    deployment: AirflowDeployment,
) -> None:
    """The child's success ends the step in the triggerer (no resume in a worker, so no wait
    before it): the next step reads the child's result."""
    run_id = _run_caller(deployment, "parent_flow", n=1)
    assert deployment.xcom("parent_flow", run_id, "flow_result") == {
        "got": {"doubled": 4, "kind": "from the caller"}
    }
    tis = deployment.task_instances("parent_flow", run_id)
    assert tis["call"]["try_number"] == 1 and tis["call"]["state"] == "success"
    # The step's log: the trigger ended it; no worker resumed it (execute_complete logs "ended").
    log = deployment.describe_task("parent_flow", run_id, "call")
    assert "flow success; the step ends here" in log and "ended, flow status" not in log, log
    assert deployment.state_mismatches("parent_flow") == []


def test_a_sub_flow_steps_rule_is_answered_where_it_waits_unless_it_stops_the_flow(
    deployment: AirflowDeployment,
) -> None:
    """Under the LocalExecutor a step resumed in a worker could meet the race, so such a resume
    waits (the step's log says so). A ``stop_after_if`` that is false needs no worker: the trigger
    answers it and ends the step with the child's result. A true one (a stop: the later steps are
    skipped) resumes the step in a worker after the wait. Both on the first try, no "state
    mismatch"."""
    going_on = _run_caller(deployment, "stopping_parent_flow", n=1)
    stopped = _run_caller(deployment, "stopping_parent_flow", n=60)
    assert deployment.xcom("stopping_parent_flow", going_on, "flow_result") == {
        "got": {"doubled": 4, "kind": "from the caller"}
    }
    assert deployment.xcom("stopping_parent_flow", stopped, "flow_result") == {
        "doubled": 122,
        "kind": "from the caller",
    }
    logs = {
        run_id: deployment.describe_task("stopping_parent_flow", run_id, "call")
        for run_id in (going_on, stopped)
    }
    for run_id, log in logs.items():
        call = deployment.task_instances("stopping_parent_flow", run_id)["call"]
        assert call["state"] == "success" and call["try_number"] == 1, log
        assert "no sooner than 10 s after this deferral" in log, log
    assert "stop_after_if is false, answered where it waits" in logs[going_on], logs[going_on]
    assert "ended, flow status" not in logs[going_on], logs[going_on]  # no worker resumed it
    assert "ended, flow status success" in logs[stopped], logs[stopped]  # a worker applied the stop
    assert deployment.task_instances("stopping_parent_flow", stopped)["after"]["state"] == "skipped"
    assert deployment.state_mismatches("stopping_parent_flow") == []
