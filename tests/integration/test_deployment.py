"""A real deployment (API server, scheduler, DAG processor) running the DAG file users copy.

- A folder with one broken flow: the others load, the broken one is a DAG that shows the error.
- Restart = Airflow's clear: clearing step 2 (with downstream) of a finished run re-runs steps 2
  and 3 with step 1's stored result, and step 1 does not run again. Driven over the REST API
  exactly as the Airflow UI's Clear dialog does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.deployment import AirflowDeployment

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


LOOP_FLOW = {
    "summary": "a parallel loop whose iterations log their runs",
    "value": {
        "modules": [
            {
                "id": "loop",
                "value": {
                    "type": "forloopflow",
                    "parallel": True,
                    "skip_failures": False,
                    "iterator": {"type": "javascript", "expr": "[10, 20, 30]"},
                    "modules": [
                        {
                            "id": "work",
                            "value": {
                                "type": "rawscript",
                                "language": "python3",
                                "content": (
                                    "def main(log, v):\n"
                                    "    with open(log, 'a') as f:\n"
                                    "        f.write(f'{v}\\n')\n"
                                    "    return v + 1\n"
                                ),
                                "input_transforms": {
                                    "log": {"type": "javascript", "expr": "flow_input.log"},
                                    "v": {"type": "javascript", "expr": "flow_input.iter.value"},
                                },
                            },
                        }
                    ],
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


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    base = tmp_path_factory.mktemp("deployment")
    dags = base / "dags"
    (dags / "flows").mkdir(parents=True)
    (dags / "flows" / "restart_demo.json").write_text(json.dumps(FLOW))
    (dags / "flows" / "loop_demo.json").write_text(json.dumps(LOOP_FLOW))
    (dags / "flows" / "broken_flow.yaml").write_text("summary: broken\nvalue:\n  modules:\n    - id: a\n")
    (dags / "openflow_dags.py").write_text((REPO / "dags" / "openflow_dags.py").read_text())
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


def test_clearing_a_step_restarts_the_flow_from_it(deployment: AirflowDeployment, tmp_path: Path) -> None:
    dag_id = "restart_demo"
    deployment.wait_for_dag(dag_id)
    log = tmp_path / "runs.log"
    run_id = deployment.trigger(dag_id, {"log": str(log)})
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    first = {step: deployment.xcom(dag_id, run_id, step) for step in "abc"}
    assert log.read_text().split() == ["a", "b", "c"]
    assert first["b"]["before"] == first["a"]["token"]

    cleared = deployment.api(
        "POST",
        f"/dags/{dag_id}/clearTaskInstances",
        {
            "dag_run_id": run_id,
            "task_ids": ["b"],
            "include_downstream": True,
            "only_failed": False,
            "dry_run": False,
        },
    )
    assert sorted(ti["task_id"] for ti in cleared["task_instances"]) == ["b", "c", "flow_result"]
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
    assert sorted(log.read_text().split()) == ["10", "20", "30"]
    assert deployment.xcom(dag_id, run_id, "flow_result") == 63

    cleared = deployment.api(
        "POST",
        f"/dags/{dag_id}/clearTaskInstances",
        {
            "dag_run_id": run_id,
            "task_ids": [["loop_iterations.work", 1]],
            "include_downstream": True,
            "only_failed": False,
            "dry_run": False,
        },
    )
    assert sorted((ti["task_id"], ti["map_index"]) for ti in cleared["task_instances"]) == [
        ("flow_result", -1),
        ("loop", -1),
        ("loop_iterations.work", 1),
        ("total", -1),
    ]
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert sorted(log.read_text().split()) == ["10", "20", "20", "30"]  # only iteration 1 ran again
    assert deployment.xcom(dag_id, run_id, "flow_result") == 63
