"""Approval steps inside loops and branches (issue 14), end to end on a real deployment: one
approval task instance per loop iteration (mapped with it), in a branch on tasks, answered through
Airflow's HITL endpoint, the OpenFlow endpoint and the signed links, with map indexes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.flows import flow, py
from tests.integration.deployment import AirflowDeployment, deployment_of_flows, password
from tests.integration.test_approvals import USERS, answer, hitl_path, wait_for_request

REPO = Path(__file__).resolve().parents[2]
APPROVAL = "l_iterations.a_approval"
SUSPEND = {"required_events": 1, "timeout": 600}


def loop_flow(
    *, parallel: bool, items: list[Any], send_links: bool = False, required_events: int = 1
) -> dict[str, Any]:
    """A for-loop whose step ``a`` asks for approval in every iteration; ``b`` reports what it saw
    of its own iteration's approval; ``total`` the loop's array. With ``send_links``, ``a`` writes
    its iteration's signed resume links to ``flow_input.out/<index>.json``."""
    code = "return {'invoice': x}"
    transforms = {"x": "flow_input.iter.value"}
    if send_links:
        code = (
            "import json, pathlib, wmill\n"
            "pathlib.Path(out, f'{i}.json').write_text(json.dumps(wmill.get_resume_urls(approver='dora')))\n"
            "return {'invoice': x}"
        )
        transforms.update(out="flow_input.out", i="flow_input.iter.index")
    a = {**py("a", code, **transforms), "suspend": {**SUSPEND, "required_events": required_events}}
    b = py(
        "b",
        "return {'invoice': prev['invoice'], 'resume': r, 'approvers': ap, 'index': i}",
        prev="previous_result",
        r="resume",
        ap="approvers",
        i="flow_input.iter.index",
    )
    loop = {
        "id": "l",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "javascript", "expr": json.dumps(items)},
            "skip_failures": True,
            "parallel": parallel,
            "modules": [a, b],
        },
    }
    return flow(loop, py("total", "return xs", xs="results.l"))


def branch_flow() -> dict[str, Any]:
    """A branchone whose first branch asks for approval of its step ``a``; the default branch does
    not ask."""
    a = {**py("a", "return {'order': n}", n="flow_input.n"), "suspend": SUSPEND}
    b = py("b", "return {'order': prev['order'], 'approvers': ap}", prev="previous_result", ap="approvers")
    choose = {
        "id": "big",
        "value": {
            "type": "branchone",
            "branches": [{"summary": "big orders", "expr": "flow_input.n > 100", "modules": [a, b]}],
            "default": [py("small", "return 'no approval needed'")],
        },
    }
    return flow(choose)


def child_flow() -> dict[str, Any]:
    """A sub-flow whose step asks for approval (run as a DAG of its own by its caller)."""
    a = {**py("a", "return n * 2", n="flow_input.n"), "suspend": SUSPEND}
    return flow(a, py("b", "return {'value': prev, 'approvers': ap}", prev="previous_result", ap="approvers"))


def caller_flow() -> dict[str, Any]:
    call = {
        "id": "call",
        "value": {
            "type": "flow",
            "path": "approving_child",
            "input_transforms": {"n": {"type": "javascript", "expr": "flow_input.n"}},
        },
    }
    return flow(call, py("after", "return {'got': r}", r="results.call"))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    flows = {
        "parallel_invoices": loop_flow(parallel=True, items=[10, 20, 30], send_links=True),
        "sequential_invoices": loop_flow(parallel=False, items=[1, 2], required_events=2),
        "branch_approval": branch_flow(),
        "approving_child": child_flow(),
        "calls_approving_child": caller_flow(),
    }
    base = tmp_path_factory.mktemp("approvals_in_containers")
    with deployment_of_flows(base, flows, users=USERS) as started:
        yield started


def states(deployment: AirflowDeployment, dag_id: str, run_id: str, task_id: str) -> dict[int, str | None]:
    """The states of a mapped task's instances, by map index."""
    listed = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/listMapped")
    return {ti["map_index"]: ti["state"] for ti in listed["task_instances"]}


def wait_until(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.5)


def test_a_parallel_loop_asks_for_every_iteration_at_once_and_a_rejection_follows_skip_failures(
    deployment: AirflowDeployment, tmp_path: Path
) -> None:
    dag_id = "parallel_invoices"
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id, {"out": str(tmp_path)})
    for index in range(3):  # all three requests open together
        wait_for_request(deployment, dag_id, run_id, task_id=APPROVAL, map_index=index)
    detail = deployment.api("GET", hitl_path(dag_id, run_id, APPROVAL, 1), user="alice")
    assert detail["subject"].endswith(", iteration 1 (20)")
    assert (
        '```json\n{"invoice": 20}\n```' in detail["body"]
        and "/tasks/l_iterations.a/mapped/1)" in detail["body"]
    )

    # Iteration 0 through Airflow's own endpoint.
    assert answer(deployment, dag_id, run_id, "alice", "Approve", task_id=APPROVAL, map_index=0) == 200
    # Iteration 1 rejected through the OpenFlow endpoint, with the map index in the path.
    endpoint = f"/openflow/approvals/{dag_id}/{run_id}/{APPROVAL}"
    reject = {"chosen_options": ["Reject"], "params_input": {}}
    status, body = deployment.plugin_status("POST", f"{endpoint}/7", reject, user="bob")
    assert status == 404 and "/ 7" in body["detail"]  # no such iteration waits
    command = [
        sys.executable, str(REPO / "examples" / "approve.py"), "--base", deployment.base, "--user", "bob",
        "--password", password("bob"), "--dag", dag_id, "--run", run_id, "--reject", "--iteration", "1",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)  # as a user would
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == 200, done.stdout + done.stderr
    # Iteration 2 with its own signed link (wmill.get_resume_urls() inside the iteration).
    links = {i: json.loads((tmp_path / f"{i}.json").read_text()) for i in range(3)}
    assert links[2]["approvalPage"].endswith(f"/tasks/{APPROVAL}/mapped/2/required_actions")
    assert "map_index=2" in links[2]["resume"]

    def call(url: str) -> int:
        return deployment.plugin_status("POST", url.removeprefix(deployment.base), {"ok": 2}, user=None)[0]

    assert call(links[2]["resume"].replace("map_index=2", "map_index=1")) == 403  # signed for 2 only
    assert call(links[0]["resume"]) == 409  # iteration 0 is answered: its link no longer works
    assert call(links[2]["resume"]) == 200

    assert deployment.wait_for_run(dag_id, run_id) == "success"
    rejected = {"error": {"name": "SuspendedDisapproved", "message": "Disapproved by bob"}}
    expected = [
        {"invoice": 10, "resume": {}, "approvers": ["alice"], "index": 0},
        rejected,
        {"invoice": 30, "resume": {"ok": 2}, "approvers": ["dora"], "index": 2},
    ]
    assert deployment.xcom(dag_id, run_id, "total") == expected
    assert states(deployment, dag_id, run_id, APPROVAL) == {0: "success", 1: "failed", 2: "success"}
    assert states(deployment, dag_id, run_id, "l_iterations.b")[1] == "upstream_failed"

    # Clearing one iteration's approval asks again for that iteration only.
    cleared = deployment.clear_with_downstream(dag_id, run_id, [[APPROVAL, 1]])
    assert (APPROVAL, 1) in cleared and (APPROVAL, 0) not in cleared and (APPROVAL, 2) not in cleared
    assert answer(deployment, dag_id, run_id, "carol", "Approve", task_id=APPROVAL, map_index=1) == 200
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    expected[1] = {"invoice": 20, "resume": {}, "approvers": ["carol"], "index": 1}
    assert deployment.xcom(dag_id, run_id, "total") == expected
    tries = {
        ti["map_index"]: ti["try_number"]
        for ti in deployment.api(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{APPROVAL}/listMapped"
        )["task_instances"]
    }
    assert tries == {0: 1, 1: 2, 2: 1}


def test_a_sequential_loop_asks_for_the_next_iteration_only_once_one_is_approved(
    deployment: AirflowDeployment,
) -> None:
    """Each iteration needs two approvers (required_events 2): its request opens again after the
    first answer, on the same task instance."""
    dag_id = "sequential_invoices"
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id)
    for index, approvers in enumerate([("alice", "bob"), ("bob", "carol")]):
        wait_for_request(deployment, dag_id, run_id, task_id=APPROVAL, map_index=index)
        later = states(deployment, dag_id, run_id, APPROVAL)
        assert all(later.get(i) in (None, "scheduled") for i in range(index + 1, 2)), later
        for approver in approvers:
            status = answer(
                deployment, dag_id, run_id, approver, "Approve", task_id=APPROVAL, map_index=index
            )
            assert status == 200
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "total") == [
        {"invoice": 1, "resume": {}, "approvers": ["alice", "bob"], "index": 0},
        {"invoice": 2, "resume": {}, "approvers": ["bob", "carol"], "index": 1},
    ]


def test_an_approval_in_a_branch_asks_only_when_its_branch_is_chosen(deployment: AirflowDeployment) -> None:
    dag_id = "branch_approval"
    deployment.wait_for_dag(dag_id)
    task_id = "big_branch_0.a_approval"
    run_id = deployment.trigger(dag_id, {"n": 500})
    assert answer(deployment, dag_id, run_id, "bob", "Approve", task_id=task_id) == 200
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "flow_result") == {"order": 500, "approvers": ["bob"]}

    run_id = deployment.trigger(dag_id, {"n": 5})
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "flow_result") == "no approval needed"
    assert deployment.task_instances(dag_id, run_id)[task_id]["state"] == "skipped"  # nobody asked


def test_a_sub_flow_run_as_its_own_dag_waits_for_its_approval_and_its_caller_for_it(
    deployment: AirflowDeployment,
) -> None:
    dag_id = "calls_approving_child"
    deployment.wait_for_dag(dag_id)
    deployment.wait_for_dag("approving_child")
    deployment.api("PATCH", "/dags/approving_child", {"is_paused": False})
    run_id = deployment.trigger(dag_id, {"n": 4})
    child_run: list[str] = []

    def child_started() -> bool:
        status, body = deployment.api_status(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/call/xcomEntries/trigger_run_id"
        )
        if status == 200:
            child_run.append(body["value"])
        return bool(child_run)

    wait_until(child_started, "the sub-flow step started its child run")
    # The caller's step waits deferred (no worker slot held) while the child waits for its approver.
    wait_until(
        lambda: deployment.task_instances(dag_id, run_id)["call"]["state"] == "deferred", "call defers"
    )
    assert answer(deployment, "approving_child", child_run[0], "alice", "Approve") == 200
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "flow_result") == {"got": {"value": 8, "approvers": ["alice"]}}
