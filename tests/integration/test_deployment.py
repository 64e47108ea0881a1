"""A real deployment (PostgreSQL, CeleryExecutor with Redis, API server, scheduler, DAG processor,
triggerer, a Celery worker) running the DAG file users copy, with the project's example flows.

- A folder with one broken flow: the others load, the broken one is a DAG that shows the error.
- Restart = Airflow's clear: clearing step 2 (with downstream) of a finished run re-runs steps 2
  and 3 with step 1's stored result, and step 1 does not run again. Driven over the REST API
  exactly as the Airflow UI's Clear dialog does.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.deployment import RESUME_RACE_DAG, AirflowDeployment

REPO = Path(__file__).resolve().parents[2]

FLOW = {
    "summary": "three steps that log their runs",
    "schema": {"type": "object", "properties": {"log": {"type": "string"}}, "required": ["log"]},
    "value": {
        "modules": [
            {
                "id": step,
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": (
                        "import random\n\n"
                        "def main(log, before):\n"
                        f"    token = random.randint(0, 10**9)\n"
                        f"    with open(log, 'a') as f:\n"
                        f"        f.write('{step}\\n')\n"
                        f"    return {{'step': '{step}', 'token': token, 'before': before}}\n"
                    ),
                    "input_transforms": {
                        "log": {"type": "javascript", "expr": "flow_input.log"},
                        "before": {"type": "javascript", "expr": "previous_result.token ?? null"},
                    },
                },
            }
            for step in ("a", "b", "c")
        ]
    },
}


def loop_flow(*, parallel: bool, steps: tuple[str, ...]) -> dict[str, object]:
    """A loop over [10, 20, 30] whose body steps log ``<step> <value>`` and add 1; then a sum."""
    body = [
        {
            "id": step,
            "value": {
                "type": "rawscript",
                "language": "python3",
                "content": (
                    "def main(log, v):\n"
                    "    with open(log, 'a') as f:\n"
                    f"        f.write(f'{step} {{v}}\\n')\n"
                    "    return v + 1\n"
                ),
                "input_transforms": {
                    "log": {"type": "javascript", "expr": "flow_input.log"},
                    "v": {"type": "javascript", "expr": "flow_input.iter.value"},
                },
            },
        }
        for step in steps
    ]
    return {
        "summary": f"a {'parallel' if parallel else 'sequential'} loop whose iterations log their runs",
        "value": {
            "modules": [
                {
                    "id": "loop",
                    "value": {
                        "type": "forloopflow",
                        "parallel": parallel,
                        "skip_failures": False,
                        "iterator": {"type": "javascript", "expr": "[10, 20, 30]"},
                        "modules": body,
                    },
                },
                {
                    "id": "total",
                    "value": {
                        "type": "rawscript",
                        "language": "python3",
                        "content": "def main(xs):\n    return sum(xs)\n",
                        "input_transforms": {"xs": {"type": "javascript", "expr": "results.loop"}},
                    },
                },
            ]
        },
    }


CHILD_FLOW = {
    "summary": "a sub-flow: doubles n, fails below zero",
    "schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    "value": {
        "modules": [
            {
                "id": "double",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": (
                        "def main(n, kind):\n"
                        "    if n < 0:\n"
                        "        raise ValueError(f'negative: {n}')\n"
                        "    return {'doubled': n * 2, 'kind': kind}\n"
                    ),
                    "input_transforms": {
                        "n": {"type": "javascript", "expr": "flow_input.n"},
                        "kind": {"type": "javascript", "expr": "flow_env.KIND ?? null"},
                    },
                },
            }
        ]
    },
}

PARENT_FLOW = {
    "summary": "calls child_flow as a sub-flow",
    "value": {
        "flow_env": {"KIND": "from the caller"},
        "modules": [
            {
                "id": "call",
                "value": {
                    "type": "flow",
                    "path": "child_flow",
                    "input_transforms": {"n": {"type": "javascript", "expr": "flow_input.n + 1"}},
                },
            },
            {
                "id": "after",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": "def main(r):\n    return {'got': r}\n",
                    "input_transforms": {"r": {"type": "javascript", "expr": "results.call"}},
                },
            },
        ],
    },
}

# The same call with a rule to evaluate once the child has run: the step resumes in a worker.
STOPPING_PARENT_FLOW = copy.deepcopy(PARENT_FLOW)
STOPPING_PARENT_FLOW["value"]["modules"][0]["stop_after_if"] = {"expr": "result.doubled > 100"}


STATE_STEP = """\
import pathlib
import wmill
from wmill import task


@task
def note(log, name):
    with open(log, "a") as f:
        f.write(name + "\\n")
    return name


def main(log):
    seen = wmill.get_flow_user_state("last")
    note(log, "{step}")
    wmill.set_flow_user_state("last", "{step}")
    return {{"seen": seen}}
"""

STATE_FLOW = {
    "summary": "each step reads the flow user state, then writes it",
    "value": {
        "modules": [
            {
                "id": step,
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": STATE_STEP.format(step=step),
                    "input_transforms": {"log": {"type": "javascript", "expr": "flow_input.log"}},
                },
            }
            for step in ("a", "b", "c")
        ]
    },
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    base = tmp_path_factory.mktemp("deployment")
    dags = base / "dags"
    (dags / "flows").mkdir(parents=True)
    (dags / "flows" / "restart_demo.json").write_text(json.dumps(FLOW))
    (dags / "flows" / "loop_demo.json").write_text(json.dumps(loop_flow(parallel=True, steps=("work",))))
    sequential = loop_flow(parallel=False, steps=("first", "second"))
    (dags / "flows" / "sequential_loop_demo.json").write_text(json.dumps(sequential))
    (dags / "flows" / "child_flow.json").write_text(json.dumps(CHILD_FLOW))
    (dags / "flows" / "parent_flow.json").write_text(json.dumps(PARENT_FLOW))
    (dags / "flows" / "stopping_parent_flow.json").write_text(json.dumps(STOPPING_PARENT_FLOW))
    (dags / "flows" / "state_demo.json").write_text(json.dumps(STATE_FLOW))
    shutil.copytree(REPO / "dags" / "flows" / "f", dags / "flows" / "f")  # the shipped examples
    (dags / "flows" / "broken_flow.yaml").write_text("summary: broken\nvalue:\n  modules:\n    - id: a\n")
    (dags / "openflow_dags.py").write_text((REPO / "dags" / "openflow_dags.py").read_text())
    (dags / "resume_race_control.py").write_text(RESUME_RACE_DAG)
    (dags / ".airflowignore").write_text((REPO / "dags" / ".airflowignore").read_text())
    deployment = AirflowDeployment(base / "home", dags).start()
    try:
        yield deployment
    finally:
        deployment.stop()


def test_a_broken_flow_is_shown_as_an_invalid_dag_and_hides_nothing(deployment: AirflowDeployment) -> None:
    deployment.wait_for_dag("restart_demo")
    broken = deployment.wait_for_dag("broken_flow")
    assert "openflow-invalid" in [tag["name"] for tag in broken["tags"]]
    details = deployment.api("GET", "/dags/broken_flow/details")
    assert "broken_flow.yaml:4 at value.modules[0].value" in details["doc_md"]
    assert deployment.api("GET", "/importErrors")["total_entries"] == 0


def test_the_api_serves_the_summaries_as_display_names(deployment: AirflowDeployment) -> None:
    """What the UI lists: the flow's summary as the DAG's name, a step's id (it has no summary)
    as its task's, the placeholder of a broken flow marked invalid; the ids are unchanged."""
    assert deployment.wait_for_dag("restart_demo")["dag_display_name"] == FLOW["summary"]
    tasks = deployment.api("GET", "/dags/restart_demo/tasks")["tasks"]
    assert {t["task_id"]: t["task_display_name"] for t in tasks} == {
        "a": "a",
        "b": "b",
        "c": "c",
        "flow_result": "Flow result",
    }
    assert deployment.wait_for_dag("broken_flow")["dag_display_name"] == "broken_flow (invalid)"


def test_clearing_a_step_restarts_the_flow_from_it(deployment: AirflowDeployment, tmp_path: Path) -> None:
    dag_id = "restart_demo"
    deployment.wait_for_dag(dag_id)
    log = tmp_path / "runs.log"
    run_id = deployment.trigger(dag_id, {"log": str(log)})
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    first = {step: deployment.xcom(dag_id, run_id, step) for step in "abc"}
    assert log.read_text().split() == ["a", "b", "c"]
    assert first["b"]["before"] == first["a"]["token"]

    cleared = deployment.clear_with_downstream(dag_id, run_id, ["b"])
    assert cleared == [("b", -1), ("c", -1), ("flow_result", -1)]
    assert deployment.wait_for_run(dag_id, run_id) == "success"

    # a ran once; b and c ran again, b with a's stored result.
    assert log.read_text().split() == ["a", "b", "c", "b", "c"]
    tis = deployment.task_instances(dag_id, run_id)
    assert tis["a"]["try_number"] == 1
    assert tis["b"]["try_number"] == 2 and tis["c"]["try_number"] == 2
    again = {step: deployment.xcom(dag_id, run_id, step) for step in "abc"}
    assert again["a"] == first["a"]
    assert again["b"]["before"] == first["a"]["token"]
    assert again["b"]["token"] != first["b"]["token"]  # b really re-ran
    assert again["c"]["before"] == again["b"]["token"]
    assert deployment.xcom(dag_id, run_id, "flow_result") == again["c"]


def test_clearing_one_iteration_reruns_only_that_iteration(
    deployment: AirflowDeployment, tmp_path: Path
) -> None:
    dag_id = "loop_demo"
    deployment.wait_for_dag(dag_id)
    log = tmp_path / "iterations.log"
    run_id = deployment.trigger(dag_id, {"log": str(log)})
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert sorted(log.read_text().splitlines()) == ["work 10", "work 20", "work 30"]
    assert deployment.xcom(dag_id, run_id, "flow_result") == 63

    cleared = deployment.clear_with_downstream(dag_id, run_id, [["loop_iterations.work", 1]])
    assert cleared == [
        ("flow_result", -1),
        ("loop", -1),
        ("loop_iterations.work", 1),
        ("total", -1),
    ]
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert sorted(log.read_text().splitlines()) == ["work 10", "work 20", "work 20", "work 30"]
    assert deployment.xcom(dag_id, run_id, "flow_result") == 63  # only iteration 1 ran again


def test_a_sequential_loop_runs_its_iterations_in_order_and_one_can_be_cleared(
    deployment: AirflowDeployment, tmp_path: Path
) -> None:
    dag_id = "sequential_loop_demo"
    deployment.wait_for_dag(dag_id)
    log = tmp_path / "iterations.log"
    run_id = deployment.trigger(dag_id, {"log": str(log)})
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    # Each iteration's steps finish before the next iteration starts (no interleaving).
    order = ["first 10", "second 10", "first 20", "second 20", "first 30", "second 30"]
    assert log.read_text().splitlines() == order
    assert deployment.xcom(dag_id, run_id, "flow_result") == 63  # 11 + 21 + 31

    cleared = deployment.clear_with_downstream(dag_id, run_id, [["loop_iterations.first", 1]])
    assert cleared == [
        ("flow_result", -1),
        ("loop", -1),
        ("loop_iterations.first", 1),
        ("loop_iterations.second", 1),
        ("total", -1),
    ]
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert log.read_text().splitlines() == [*order, "first 20", "second 20"]
    assert deployment.xcom(dag_id, run_id, "flow_result") == 63


def test_a_sub_flow_step_runs_the_child_flows_own_dag_and_takes_its_result(
    deployment: AirflowDeployment,
) -> None:
    deployment.wait_for_dag("child_flow")
    deployment.api("PATCH", "/dags/child_flow", {"is_paused": False})
    deployment.wait_for_dag("parent_flow")
    run_id = deployment.trigger("parent_flow", {"n": 20})
    assert deployment.wait_for_run("parent_flow", run_id) == "success"
    # The child has no flow_env: it uses its caller's (Windmill's rule).
    expected = {"doubled": 42, "kind": "from the caller"}
    assert deployment.xcom("parent_flow", run_id, "flow_result") == {"got": expected}

    child_run = deployment.xcom("parent_flow", run_id, "call", key="trigger_run_id")
    assert child_run == f"openflow__parent_flow__{run_id}__call__1"
    child = deployment.api("GET", f"/dags/child_flow/dagRuns/{child_run}")
    assert child["state"] == "success" and child["conf"]["n"] == 21  # a real run of the child's DAG
    assert deployment.xcom("child_flow", child_run, "flow_result") == expected
    links = deployment.api("GET", f"/dags/parent_flow/dagRuns/{run_id}/taskInstances/call/links")
    # The Airflow UI's "Triggered DAG" link on the step opens the child run.
    assert links["extra_links"]["Triggered DAG"].endswith(f"/dags/child_flow/runs/{child_run}")

    failing = deployment.trigger("parent_flow", {"n": -5})
    assert deployment.wait_for_run("parent_flow", failing) == "failed"
    error = deployment.xcom("parent_flow", failing, "flow_result")["error"]
    explained = deployment.describe_task("parent_flow", failing, "call")  # shown if the next line fails
    assert error["name"] == "ValueError" and "negative: -4" in error["message"], explained
    states = deployment.task_instances("parent_flow", failing)
    assert states["call"]["state"] == "failed" and states["after"]["state"] == "upstream_failed"


def test_a_sub_flow_steps_rule_is_evaluated_in_a_worker_resumed_at_once_on_celery(
    deployment: AirflowDeployment,
) -> None:
    """``stop_after_if`` on a sub-flow step: the step resumes in a worker once the child has run
    (the rule is evaluated there), at once: the CeleryExecutor cannot fail a resumed task with the
    late end report of the workload that deferred it (apache/airflow#72716), so the 10 s wait the
    LocalExecutor needs is not taken. Both answers of the rule: a stop, and going on."""
    deployment.wait_for_dag("child_flow")
    deployment.api("PATCH", "/dags/child_flow", {"is_paused": False})
    deployment.wait_for_dag("stopping_parent_flow")
    stopped = deployment.trigger("stopping_parent_flow", {"n": 60})
    going_on = deployment.trigger("stopping_parent_flow", {"n": 1})
    assert deployment.wait_for_run("stopping_parent_flow", stopped) == "success"
    assert deployment.wait_for_run("stopping_parent_flow", going_on) == "success"
    expected = {"doubled": 122, "kind": "from the caller"}
    assert deployment.xcom("stopping_parent_flow", stopped, "flow_result") == expected
    assert deployment.xcom("stopping_parent_flow", going_on, "flow_result") == {
        "got": {"doubled": 4, "kind": "from the caller"}
    }
    states = deployment.task_instances("stopping_parent_flow", stopped)
    assert states["after"]["state"] == "skipped"
    for run_id in (stopped, going_on):
        log = deployment.describe_task("stopping_parent_flow", run_id, "call")
        call = deployment.task_instances("stopping_parent_flow", run_id)["call"]
        assert call["state"] == "success" and call["try_number"] == 1, log
        assert "ended, flow status success" in log, log  # resumed in a worker (execute_complete)
        assert "no sooner than" not in log, log  # no wait announced before it
    assert deployment.state_mismatches("stopping_parent_flow") == []


def test_the_resume_race_of_airflow_3_3_2_does_not_strike_on_celery(deployment: AirflowDeployment) -> None:
    """Why a resume needs no wait here: the tasks that ``test_waits.py`` shows failed by
    apache/airflow#72716 under the LocalExecutor (deferred from a worker on a trigger that fires at
    once, resumed while the workload that deferred them has not ended) all succeed on the
    CeleryExecutor, on their first try. If this fails, ``triggers/waits.py`` must count the
    CeleryExecutor among the executors that need the wait again (``RESUME_SAFE_EXECUTORS``)."""
    deployment.wait_for_dag("resume_race_control")
    run_id = deployment.trigger("resume_race_control")
    assert deployment.wait_for_run("resume_race_control", run_id) == "success"
    tis = deployment.task_instances("resume_race_control", run_id)
    assert {(ti["state"], ti["try_number"]) for ti in tis.values()} == {("success", 1)}, tis
    assert deployment.state_mismatches("resume_race_control") == []


def test_clearing_a_step_drops_its_flow_user_state_and_reruns_its_workflow_tasks(
    deployment: AirflowDeployment, tmp_path: Path
) -> None:
    dag_id = "state_demo"
    deployment.wait_for_dag(dag_id)
    log = tmp_path / "notes.log"
    run_id = deployment.trigger(dag_id, {"log": str(log)})
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    seen = [deployment.xcom(dag_id, run_id, step)["seen"] for step in "abc"]
    assert seen == [None, "a", "b"]
    # The state is an XCom of the task that wrote it (the Airflow UI's XCom tab shows it).
    assert deployment.xcom(dag_id, run_id, "b", key="flow_user_state.last")["value"] == "b"

    deployment.clear_with_downstream(dag_id, run_id, ["b"])
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    # b sees a's write again: not its own from before the clear, nor c's (c has not re-run yet).
    seen = [deployment.xcom(dag_id, run_id, step)["seen"] for step in "abc"]
    assert seen == [None, "a", "b"]
    # A cleared step re-runs its workflow-as-code tasks from scratch; a is not run again.
    assert log.read_text().split() == ["a", "b", "c", "b", "c"]


def test_the_example_flows_run_to_their_results_on_the_celery_worker(
    deployment: AirflowDeployment, tmp_path: Path
) -> None:
    """The flows shipped in dags/flows/, triggered over REST as the UI does: each task ran on the
    Celery worker, and each flow's result is what its steps compute."""
    order = "f__examples__order_summary"
    deployment.wait_for_dag(order)
    items = [{"name": "tea", "price": 4.5, "qty": 2}, {"name": "cake", "price": 3, "qty": 1}]
    run_id = deployment.trigger(order, {"customer": "Ada", "items": items})
    state = deployment.wait_for_run(order, run_id)
    assert state == "success", deployment.describe_task(order, run_id, "total")
    # 2 x 4.50 + 3 = 12.00, less the step's 10 % discount.
    assert deployment.xcom(order, run_id, "flow_result") == {
        "customer": "Ada",
        "receipt": "Ada pays 10.80 EUR",
        "total": 10.8,
        "lines": 2,
    }
    worker_log = (deployment.home / "celery-worker.log").read_text(errors="replace")
    assert run_id in worker_log, "the steps did not run on the Celery worker"

    poll = "f__examples__poll_new_orders"
    deployment.wait_for_dag(poll)
    (tmp_path / "001.json").write_text('{"items": ["tea", "cake"]}')
    (tmp_path / "002.json").write_text('{"items": ["jam"]}')
    first = deployment.trigger(poll, {"inbox": str(tmp_path)})
    assert deployment.wait_for_run(poll, first) == "success"
    assert deployment.xcom(poll, first, "flow_result") == {"orders": 2, "items": 3}
    # Trigger state (wmill.set_state) persisted in the metadata DB: nothing new, the flow stops early.
    again = deployment.trigger(poll, {"inbox": str(tmp_path)})
    assert deployment.wait_for_run(poll, again) == "success"
    assert deployment.task_instances(poll, again)["count"]["state"] == "skipped"
