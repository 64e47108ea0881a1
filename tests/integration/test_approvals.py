"""Approval steps (``suspend``) on Airflow's human-in-the-loop, end to end: a real deployment
(API server, scheduler, DAG processor, triggerer) and approvers answering over the REST API with
tokens of their own, as an external approval tool or Airflow's Required Actions page does."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_openflow.cli import main
from tests.flows import flow, py
from tests.integration.deployment import AirflowDeployment, deployment_of_flows, password

REPO = Path(__file__).resolve().parents[2]
USERS = {"alice": "user", "bob": "user", "carol": "user", "vera": "viewer", "olga": "op"}

FORM = {
    "schema": {
        "type": "object",
        "properties": {"comment": {"type": "string", "maxLength": 20}},
        "required": ["comment"],
    }
}


def approval_flow(suspend: dict[str, Any]) -> dict[str, Any]:
    a = {**py("a", "return {'order': 42}"), "suspend": suspend}
    b = py(
        "b",
        "return {'r': r, 'rs': rs, 'ap': ap, 'prev': prev}",
        r="resume",
        rs="resumes",
        ap="approvers",
        prev="previous_result",
    )
    c = py("c", "return seen", seen="typeof resume")  # only the step right after sees resume
    document = flow(a, b, c)
    document["value"]["failure_module"] = py(
        "failure", "return {'handled': e}", e="previous_result.error.name"
    )
    return document


def linked_flow(**suspend: Any) -> dict[str, Any]:
    """Step a sends resume links (wmill.get_resume_urls) to two approvers, here: into a file."""
    send = (
        "import json, pathlib, wmill\n"
        "links = {who: wmill.get_resume_urls(approver=who) for who in ('dora', 'eli')}\n"
        "pathlib.Path(out).write_text(json.dumps(links))\n"
        "return 'sent'"
    )
    settings = {"required_events": 2, "timeout": 600, **suspend}
    a = {**py("a", send, out="flow_input.out"), "suspend": settings}
    b = py("b", "return {'rs': rs, 'ap': ap}", rs="resumes", ap="approvers")
    return flow(a, b)


#: A flow input schema: the DAG's params (its trigger form), which the approval form must not show.
SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "description": "how much"},
        "who": {"type": "string", "default": "ann"},
    },
    "required": ["amount"],
}


#: The approval form of such a flow: a field of its own, and one with the name of a flow input but
#: another schema (the approver says how much of the amount is approved).
SCHEMA_FORM = {
    "schema": {
        "type": "object",
        "properties": {
            "comment": {"type": "string", "maxLength": 20},
            "amount": {"type": "number", "maximum": 5, "description": "approved amount"},
        },
    }
}


def schema_flow(suspend: dict[str, Any]) -> dict[str, Any]:
    """A flow with an input schema whose step a asks for approval (issue 14, item 0)."""
    a = {**py("a", "return {'order': n}", n="flow_input.amount"), "suspend": suspend}
    b = py("b", "return {'r': r, 'in': i, 'prev': prev}", r="resume", i="flow_input", prev="previous_result")
    return {**flow(a, b), "schema": SCHEMA}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    flows = {
        "two_approvals": approval_flow({"required_events": 2, "timeout": 600, "resume_form": FORM}),
        "one_approval": approval_flow({"required_events": 1, "timeout": 600}),
        "linked": linked_flow(),
        "ops_only": approval_flow(
            {
                "required_events": 1,
                "timeout": 600,
                "user_groups_required": {"type": "static", "value": ["op"]},
            }
        ),
        "linked_login_only": linked_flow(required_events=1, user_auth_required=True),
        "not_by_the_starter": approval_flow(
            {"required_events": 1, "timeout": 600, "resume_form": FORM, "self_approval_disabled": True}
        ),
        "with_schema": schema_flow({"required_events": 1, "timeout": 600, "resume_form": SCHEMA_FORM}),
        "with_schema_no_form": schema_flow({"required_events": 1, "timeout": 600}),
        # Not shorter: a timeout that fires before the scheduler has processed the paused
        # workload's "finished" event hits the Airflow 3.3.2 race described in wait_for_request.
        "short_wait": approval_flow({"required_events": 1, "timeout": 12}),
        "short_wait_goes_on": approval_flow(
            {"required_events": 1, "timeout": 12, "continue_on_disapprove_timeout": True}
        ),
    }
    # The scheduler enforces approval timeouts; check them every second rather than every 15 s.
    env = {"AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "1"}
    base = tmp_path_factory.mktemp("approvals")
    with deployment_of_flows(base, flows, users=USERS, extra_env=env) as started:
        yield started


def hitl_path(dag_id: str, run_id: str, task_id: str = "a_approval", map_index: int = -1) -> str:
    return f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"


def wait_for_request(
    deployment: AirflowDeployment,
    dag_id: str,
    run_id: str,
    timeout: float = 120,
    *,
    task_id: str = "a_approval",
    map_index: int = -1,
) -> None:
    """Until the approval task (instance) waits for a response (again), and the scheduler knows it.

    Airflow 3.3.2 race: a response that arrives before the scheduler has processed the executor's
    "finished" event of the paused workload gets the task marked failed ("finished with state
    success, but the task instance's state attribute is queued/running"). So this also waits for
    the scheduler's "TaskInstance Finished ... state=awaiting_input" line of this pause."""
    deadline = time.monotonic() + timeout
    path = hitl_path(dag_id, run_id, task_id, map_index)
    while time.monotonic() < deadline:
        status, detail = deployment.api_status("GET", path)
        waiting = status == 200 and detail["task_instance"]["state"] == "awaiting_input"
        if (
            waiting
            and not detail["response_received"]
            and _pause_processed(deployment, dag_id, run_id, task_id, map_index)
        ):
            return
        time.sleep(0.5)
    where = f"{dag_id} {run_id} {task_id}[{map_index}]"
    raise AssertionError(f"{where}: no open approval request\n{deployment.log_tail('scheduler')}")


def _pause_processed(
    deployment: AirflowDeployment, dag_id: str, run_id: str, task_id: str, map_index: int
) -> bool:
    """Whether the scheduler has processed the end of every workload of the approval task so far
    (one "TaskInstance Finished" line per "Trying to enqueue tasks" line naming it)."""
    lines = (deployment.home / "scheduler.log").read_text(errors="replace").splitlines()
    mapped = f"map_index={map_index} " if map_index >= 0 else ""
    queued = f"<TaskInstance: {dag_id}.{task_id} {run_id} {mapped}["
    finished = (
        f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id}, map_index={map_index},"
    )
    starts = sum(line.count(queued) for line in lines if "Trying to enqueue tasks" in line)
    ends = sum(1 for line in lines if finished in line)
    return starts > 0 and ends >= starts


def answer(
    deployment: AirflowDeployment,
    dag_id: str,
    run_id: str,
    user: str,
    option: str,
    *,
    task_id: str = "a_approval",
    map_index: int = -1,
    **form: Any,
) -> int:
    """Answer through Airflow's own HITL endpoint, once the request is open; the status code."""
    wait_for_request(deployment, dag_id, run_id, task_id=task_id, map_index=map_index)
    body = {"chosen_options": [option], "params_input": form}
    status, _ = deployment.api_status("PATCH", hitl_path(dag_id, run_id, task_id, map_index), body, user=user)
    return status


def test_two_distinct_approvers_with_valid_forms_let_the_flow_go_on(deployment: AirflowDeployment) -> None:
    dag_id = "two_approvals"
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id)

    assert answer(deployment, dag_id, run_id, "vera", "Approve", comment="viewer") == 403  # may not approve
    # The request names the step and the flow and shows the step's result and where its log is.
    detail = deployment.api("GET", hitl_path(dag_id, run_id))
    assert detail["subject"].startswith("Approve “a” of flow “")
    assert '```json\n{"order": 42}\n```' in detail["body"]
    assert f"/dags/{dag_id}/runs/" in detail["body"] and "/tasks/a)" in detail["body"]
    # Airflow accepts a form that violates the schema; the approval does not count and the flow waits.
    assert answer(deployment, dag_id, run_id, "alice", "Approve", comment="x" * 40) == 200
    assert answer(deployment, dag_id, run_id, "alice", "Approve", comment="ok by alice") == 200
    assert answer(deployment, dag_id, run_id, "alice", "Approve", comment="again") == 200  # not twice
    assert deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"] == "running"
    assert answer(deployment, dag_id, run_id, "bob", "Approve", comment="ok by bob") == 200

    assert deployment.wait_for_run(dag_id, run_id) == "success"
    b = deployment.xcom(dag_id, run_id, "b")
    assert b == {
        "r": {"comment": "ok by bob"},
        "rs": [{"comment": "ok by alice"}, {"comment": "ok by bob"}],
        "ap": ["alice", "bob"],
        "prev": {"order": 42},
    }
    assert deployment.xcom(dag_id, run_id, "flow_result") == "undefined"


def test_a_rejection_fails_the_flow_and_runs_the_failure_module(deployment: AirflowDeployment) -> None:
    dag_id = "one_approval"
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id)
    wait_for_request(deployment, dag_id, run_id)
    # As a user would: the example script, run as a program.
    command = [
        sys.executable, str(REPO / "examples" / "approve.py"), "--base", deployment.base,
        "--user", "carol", "--password", password("carol"), "--dag", dag_id, "--run", run_id, "--reject",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["status"] == 200
    assert deployment.wait_for_run(dag_id, run_id) == "failed"
    assert deployment.xcom(dag_id, run_id, "a_approval") == {
        "error": {"name": "SuspendedDisapproved", "message": "Disapproved by carol"}
    }
    assert deployment.xcom(dag_id, run_id, "flow_result") == {"handled": "SuspendedDisapproved"}
    assert deployment.task_instances(dag_id, run_id)["b"]["state"] == "upstream_failed"


def test_a_timeout_fails_the_flow_or_goes_on_with_the_error_as_resume(deployment: AirflowDeployment) -> None:
    deployment.wait_for_dag("short_wait")
    run_id = deployment.trigger("short_wait")
    assert deployment.wait_for_run("short_wait", run_id) == "failed"
    assert deployment.xcom("short_wait", run_id, "flow_result") == {"handled": "SuspendedTimedOut"}

    deployment.wait_for_dag("short_wait_goes_on")
    run_id = deployment.trigger("short_wait_goes_on")
    assert deployment.wait_for_run("short_wait_goes_on", run_id) == "success"
    error = {"error": {"name": "SuspendedTimedOut", "message": "Timed out waiting to be resumed"}}
    b = deployment.xcom("short_wait_goes_on", run_id, "b")
    assert b == {"r": error, "rs": [error], "ap": [], "prev": {"order": 42}}


def test_clearing_asks_again_for_the_approval_task_only(deployment: AirflowDeployment) -> None:
    dag_id = "one_approval"
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id)
    assert answer(deployment, dag_id, run_id, "alice", "Approve") == 200
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "b")["ap"] == ["alice"]

    # Restarting from the step after the approval (airflow-openflow restart) keeps the recorded
    # approval: nobody is asked again.
    credentials = ["--api-url", deployment.base, "--username", "admin", "--password", password("admin")]
    assert main(["restart", dag_id, run_id, "--from", "b", *credentials]) == 0
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    tis = deployment.task_instances(dag_id, run_id)
    assert tis["b"]["try_number"] == 2 and tis["a_approval"]["try_number"] == 1
    assert deployment.xcom(dag_id, run_id, "b")["ap"] == ["alice"]

    # Clearing the approval task asks for the approval again.
    assert ("a_approval", -1) in deployment.clear_with_downstream(dag_id, run_id, ["a_approval"])
    assert answer(deployment, dag_id, run_id, "bob", "Approve") == 200
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "b")["ap"] == ["bob"]


def test_the_openflow_endpoint_refuses_what_the_step_does_not_allow(deployment: AirflowDeployment) -> None:
    dag_id = "not_by_the_starter"
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id, user="alice")
    wait_for_request(deployment, dag_id, run_id)
    path = f"/openflow/approvals/{dag_id}/{run_id}/a_approval"

    def post(user: str, option: str, **form: Any) -> tuple[int, Any]:
        body = {"chosen_options": [option], "params_input": form}
        return deployment.plugin_status("POST", path, body, user=user)

    status, body = post("alice", "Approve", comment="mine")
    assert status == 403 and "self_approval_disabled" in body["detail"]
    status, body = post("bob", "Approve", comment="x" * 40)
    assert status == 422 and "is too long" in body["detail"]
    assert post("vera", "Approve", comment="viewer")[0] == 403  # no permission to answer at all
    # Through Airflow's own endpoint the starter's answer is accepted (200) but does not count.
    assert answer(deployment, dag_id, run_id, "alice", "Approve", comment="mine") == 200
    wait_for_request(deployment, dag_id, run_id)
    status, _ = post("bob", "Approve", comment="fine by bob")
    assert status == 200
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "b")["ap"] == ["bob"]


def test_signed_resume_links_approve_without_a_login_once_each(
    deployment: AirflowDeployment, tmp_path: Path
) -> None:
    import base64

    dag_id = "linked"
    deployment.wait_for_dag(dag_id)
    out = tmp_path / "links.json"
    run_id = deployment.trigger(dag_id, {"out": str(out)})
    wait_for_request(deployment, dag_id, run_id)
    links = json.loads(out.read_text())
    dora, eli = links["dora"], links["eli"]
    assert dora["approvalPage"].startswith(deployment.base) and "/required_actions" in dora["approvalPage"]

    def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
        return deployment.plugin_status(method, url.removeprefix(deployment.base), body, user=None)

    assert call("POST", dora["resume"], {"ok": 1})[0] == 200  # no Airflow login needed
    wait_for_request(deployment, dag_id, run_id)
    status, body = call("POST", dora["resume"], {"ok": 2})
    assert status == 409 and "already been used" in body["detail"]
    forged = eli["resume"].replace("approver=eli", "approver=mallory")
    assert call("GET", forged)[0] == 403
    payload = base64.b64encode(json.dumps("from link").encode()).decode()
    assert call("GET", f"{eli['resume']}&payload={payload}")[0] == 200
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "b") == {"rs": [{"ok": 1}, "from link"], "ap": ["dora", "eli"]}
    assert call("GET", eli["cancel"])[0] == 409  # the approval is over: the links no longer work

    run_id = deployment.trigger(dag_id, {"out": str(out)})
    wait_for_request(deployment, dag_id, run_id)
    assert call("GET", json.loads(out.read_text())["eli"]["cancel"])[0] == 200
    assert deployment.wait_for_run(dag_id, run_id) == "failed"
    error = deployment.xcom(dag_id, run_id, "a_approval")["error"]
    assert error == {"name": "SuspendedDisapproved", "message": "Disapproved by eli"}


def test_user_auth_required_refuses_links_but_not_logged_in_approvers(
    deployment: AirflowDeployment, tmp_path: Path
) -> None:
    dag_id = "linked_login_only"
    deployment.wait_for_dag(dag_id)
    out = tmp_path / "links.json"
    run_id = deployment.trigger(dag_id, {"out": str(out)})
    wait_for_request(deployment, dag_id, run_id)
    link = json.loads(out.read_text())["dora"]["resume"]
    status, body = deployment.plugin_status("POST", link.removeprefix(deployment.base), {}, user=None)
    assert status == 403 and "user_auth_required" in body["detail"]
    assert answer(deployment, dag_id, run_id, "bob", "Approve") == 200
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "b")["ap"] == ["bob"]


def test_user_groups_required_lets_only_members_answer(deployment: AirflowDeployment) -> None:
    dag_id = "ops_only"
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id)
    wait_for_request(deployment, dag_id, run_id)
    path = f"/openflow/approvals/{dag_id}/{run_id}/a_approval"
    body = {"chosen_options": ["Approve"], "params_input": {}}
    status, answer_body = deployment.plugin_status("POST", path, body, user="alice")
    assert status == 403 and "none of the groups" in answer_body["detail"]
    assert answer(deployment, dag_id, run_id, "alice", "Approve") == 403  # Airflow's own endpoint too
    assert deployment.plugin_status("POST", path, body, user="olga")[0] == 200  # role op
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    assert deployment.xcom(dag_id, run_id, "b")["ap"] == ["olga"]


def test_an_approval_in_a_flow_with_a_schema_asks_only_for_its_own_form(
    deployment: AirflowDeployment,
) -> None:
    """The flow's schema is the trigger form; the approval's Required Action shows the
    resume_form's fields only; the next step sees both the flow input and the approval's form."""
    dag_id = "with_schema"
    deployment.wait_for_dag(dag_id)
    tasks = {t["task_id"] for t in deployment.api("GET", f"/dags/{dag_id}/tasks")["tasks"]}
    assert tasks == {"a", "a_approval", "b", "flow_result"}  # built, not the invalid-flow placeholder
    assert set(deployment.api("GET", f"/dags/{dag_id}/details")["params"]) == {"amount", "who"}
    deployment.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    status, _ = deployment.api_status("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": {}})
    assert status == 400  # the trigger form still requires amount
    run_id = deployment.trigger(dag_id, {"amount": 7})

    wait_for_request(deployment, dag_id, run_id)
    detail = deployment.api("GET", hitl_path(dag_id, run_id), user="alice")  # what an approver sees
    assert set(detail["params"]) == {"comment", "amount"}  # not the flow input "who"
    assert detail["params"]["amount"]["schema"]["maximum"] == 5  # the form's amount, not the input's
    assert detail["options"] == ["Approve", "Reject"]
    assert answer(deployment, dag_id, run_id, "alice", "Approve", comment="fine by me", amount=4) == 200

    assert deployment.wait_for_run(dag_id, run_id) == "success", deployment.describe_task(
        dag_id, run_id, "a_approval"
    )
    resume = {"comment": "fine by me", "amount": 4}
    expected = {"r": resume, "in": {"amount": 7, "who": "ann"}, "prev": {"order": 7}}
    assert deployment.xcom(dag_id, run_id, "b") == expected
    assert deployment.xcom(dag_id, run_id, "flow_result") == expected


def test_an_approval_without_a_form_in_a_flow_with_a_schema_has_no_fields(
    deployment: AirflowDeployment,
) -> None:
    dag_id = "with_schema_no_form"
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id, {"amount": 3, "who": "bo"})
    wait_for_request(deployment, dag_id, run_id)
    assert deployment.api("GET", hitl_path(dag_id, run_id), user="bob")["params"] == {}
    assert answer(deployment, dag_id, run_id, "bob", "Approve") == 200
    assert deployment.wait_for_run(dag_id, run_id) == "success"
    expected = {"r": {}, "in": {"amount": 3, "who": "bo"}, "prev": {"order": 3}}
    assert deployment.xcom(dag_id, run_id, "flow_result") == expected
