"""``airflow-openflow restart`` against a real deployment (API server, scheduler, DAG processor).

A flow whose middle step fails because a Variable is missing; the Variable is set; ``restart --from
<step> --dry-run`` lists what it would clear and changes nothing; ``restart --from <step>`` clears
it and what follows, the run completes with the right result, and the step before keeps its try.
Unknown DAG, run and step exit 2 with a message; ``--iteration`` re-runs loop iterations; a step
inside a branch restarts with the branch choice kept (after an approval: test_approvals.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_openflow.cli import main
from tests.flows import py
from tests.integration.deployment import ADMIN, ADMIN_PASSWORD, AirflowDeployment
from tests.integration.test_deployment import loop_flow

REPO = Path(__file__).resolve().parents[2]


FLOW = {
    "summary": "b needs the Variable f/restart/factor",
    "value": {
        "modules": [
            py("a", "return 2"),
            py("b", "return x * int(factor)", x="results.a", factor='variable("f/restart/factor")'),
            py("c", "return x + 1", x="results.b"),
        ]
    },
}


#: The chosen branch's step needs a Variable; the default branch does not run.
BRANCH_FLOW = {
    "summary": "a branch step needs the Variable f/restart/bonus",
    "value": {
        "modules": [
            py("a", "return 7"),
            {
                "id": "pick",
                "value": {
                    "type": "branchone",
                    "branches": [
                        {
                            "expr": "results.a > 5",
                            "modules": [
                                py("big", "return x + int(b)", x="results.a", b='variable("f/restart/bonus")')
                            ],
                        }
                    ],
                    "default": [py("small", "return 0")],
                },
            },
            py("c", "return x * 10", x="results.pick"),
        ]
    },
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    base = tmp_path_factory.mktemp("restart_cli")
    dags = base / "dags"
    (dags / "flows").mkdir(parents=True)
    (dags / "flows" / "needs_variable.json").write_text(json.dumps(FLOW))
    sequential = loop_flow(parallel=False, steps=("first", "second"))
    (dags / "flows" / "sequential_loop.json").write_text(json.dumps(sequential))
    parallel = loop_flow(parallel=True, steps=("work",))
    (dags / "flows" / "parallel_loop.json").write_text(json.dumps(parallel))
    (dags / "flows" / "branch_needs_variable.json").write_text(json.dumps(BRANCH_FLOW))
    (dags / "openflow_dags.py").write_text((REPO / "dags" / "openflow_dags.py").read_text())
    (dags / ".airflowignore").write_text((REPO / "dags" / ".airflowignore").read_text())
    deployment = AirflowDeployment(base / "home", dags).start()
    try:
        yield deployment
    finally:
        deployment.stop()


def restart(
    deployment: AirflowDeployment, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    credentials = ["--api-url", deployment.base, "--username", ADMIN, "--password", ADMIN_PASSWORD]
    code = main(["restart", *args, *credentials])
    out, err = capsys.readouterr()
    return code, out, err


def test_restart_from_the_failed_step_after_fixing_its_variable(
    deployment: AirflowDeployment, capsys: pytest.CaptureFixture[str]
) -> None:
    dag_id = "needs_variable"
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id)
    assert deployment.wait_for_run(dag_id, run_id) == "failed"
    before = deployment.task_instances(dag_id, run_id)
    assert before["a"]["state"] == "success" and before["b"]["state"] == "failed"

    deployment.api("POST", "/variables", {"key": "f__restart__factor", "value": "5"})

    code, out, err = restart(deployment, capsys, dag_id, run_id, "--from", "b", "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"Would clear 3 task instance(s) of run {run_id} of {dag_id}:"
    listed = {line.split()[0]: line.split()[2] for line in lines[2:5]}
    assert listed == {"b": "failed", "c": "upstream_failed", "flow_result": before["flow_result"]["state"]}
    assert "dry run" in out
    unchanged = deployment.task_instances(dag_id, run_id)
    assert {t: (ti["state"], ti["try_number"]) for t, ti in unchanged.items()} == {
        t: (ti["state"], ti["try_number"]) for t, ti in before.items()
    }
    assert deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"] == "failed"

    code, out, err = restart(deployment, capsys, dag_id, run_id, "--from", "b")
    assert code == 0, err
    assert out.splitlines()[0] == f"Cleared 3 task instance(s) of run {run_id} of {dag_id}:"
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "flow_result") == 11  # 2 * 5 + 1
    after = deployment.task_instances(dag_id, run_id)
    assert after["a"]["try_number"] == before["a"]["try_number"] == 1
    assert after["b"]["try_number"] == 2 and after["b"]["state"] == "success"


def test_unknown_dag_run_or_step(deployment: AirflowDeployment, capsys: pytest.CaptureFixture[str]) -> None:
    dag_id = "needs_variable"
    deployment.wait_for_dag(dag_id)
    code, _, err = restart(deployment, capsys, "no_such_dag", "r", "--from", "b")
    assert code == 2 and "DAG 'no_such_dag' not found" in err
    code, _, err = restart(deployment, capsys, dag_id, "no_such_run", "--from", "b")
    assert code == 2 and "run 'no_such_run' of DAG 'needs_variable' not found" in err

    run_id = deployment.trigger(dag_id)
    deployment.wait_for_run(dag_id, run_id)
    code, _, err = restart(deployment, capsys, dag_id, run_id, "--from", "nope", "--dry-run")
    assert code == 2 and "no step 'nope' in this DAG; its steps: a, b, c" in err


def test_a_token_is_taken_from_the_option(
    deployment: AirflowDeployment, capsys: pytest.CaptureFixture[str]
) -> None:
    dag_id = "needs_variable"
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id)
    deployment.wait_for_run(dag_id, run_id)
    args = ["restart", dag_id, run_id, "--from", "c", "--dry-run", "--api-url", deployment.base]
    assert main([*args, "--token", "not-a-token"]) == 1
    assert "not allowed" in capsys.readouterr().err
    assert main([*args, "--token", deployment.token()]) == 0
    assert capsys.readouterr().out.startswith("Would clear 2 task instance(s)")


def test_iteration_of_a_sequential_loop_reruns_it_and_the_later_ones(
    deployment: AirflowDeployment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dag_id = "sequential_loop"
    deployment.wait_for_dag(dag_id)
    log = tmp_path / "iterations.log"
    run_id = deployment.trigger(dag_id, {"log": str(log)})
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    order = ["first 10", "second 10", "first 20", "second 20", "first 30", "second 30"]
    assert log.read_text().splitlines() == order

    code, out, err = restart(deployment, capsys, dag_id, run_id, "--from", "loop", "--iteration", "1")
    assert code == 0, err
    cleared = sorted((line.split()[0], line.split()[1]) for line in out.splitlines()[2:])
    assert cleared == [
        ("flow_result", "-"),
        ("loop", "-"),
        ("loop_iterations.first", "1"),
        ("loop_iterations.first", "2"),
        ("loop_iterations.second", "1"),
        ("loop_iterations.second", "2"),
        ("total", "-"),
    ]
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert log.read_text().splitlines() == order + order[2:]  # iteration 0 did not run again
    assert deployment.xcom(dag_id, run_id, "flow_result") == 63


def test_iteration_of_a_parallel_loop_reruns_that_iteration(
    deployment: AirflowDeployment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dag_id = "parallel_loop"
    deployment.wait_for_dag(dag_id)
    log = tmp_path / "iterations.log"
    run_id = deployment.trigger(dag_id, {"log": str(log)})
    assert deployment.wait_for_run(dag_id, run_id) == "success"

    code, out, err = restart(deployment, capsys, dag_id, run_id, "--from", "work", "--iteration", "1")
    assert code == 0, err
    cleared = sorted((line.split()[0], line.split()[1]) for line in out.splitlines()[2:])
    assert cleared == [("flow_result", "-"), ("loop", "-"), ("loop_iterations.work", "1"), ("total", "-")]
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert sorted(log.read_text().splitlines()) == ["work 10", "work 20", "work 20", "work 30"]
    assert deployment.xcom(dag_id, run_id, "flow_result") == 63

    code, _, err = restart(deployment, capsys, dag_id, run_id, "--from", "loop", "--iteration", "7")
    assert code == 2 and "loop 'loop' has no iteration 7 in this run (iterations: 0..2)" in err


def test_restart_from_a_step_inside_a_branch(
    deployment: AirflowDeployment, capsys: pytest.CaptureFixture[str]
) -> None:
    dag_id = "branch_needs_variable"
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id)
    assert deployment.wait_for_run(dag_id, run_id) == "failed"
    before = deployment.task_instances(dag_id, run_id)
    assert before["pick_branch_0.big"]["state"] == "failed"
    assert before["pick_default.small"]["state"] == "skipped"

    deployment.api("POST", "/variables", {"key": "f__restart__bonus", "value": "3"})
    code, out, err = restart(deployment, capsys, dag_id, run_id, "--from", "big")
    assert code == 0, err
    cleared = sorted(line.split()[0] for line in out.splitlines()[2:])
    # The branch step and what follows it; not the chooser, which keeps its choice.
    assert cleared == ["c", "flow_result", "pick", "pick_branch_0.big"]
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "flow_result") == 100  # (7 + 3) * 10
    after = deployment.task_instances(dag_id, run_id)
    assert after["a"]["try_number"] == after["pick_choose"]["try_number"] == 1
    assert after["pick_branch_0.big"]["try_number"] == 2
    assert after["pick_default.small"]["state"] == "skipped"
