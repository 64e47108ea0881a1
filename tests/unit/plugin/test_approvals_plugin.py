"""plugin/: the plugin's registration, and the signed resume-link route of its FastAPI app with the
API-server functions it imports (compat/api_server.py) replaced by fakes: no database, no server.
Airflow's own HITL recording and the login-protected approvals route are left to the integration
tests."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from airflow_openflow.plugin import OpenFlowPlugin
from airflow_openflow.plugin import approvals_api as api
from airflow_openflow.runtime.approval_rules import RULES_KEY, approval_rules
from airflow_openflow.runtime.resume_links import PAYLOAD_KEY, SECRET_VARIABLE, resume_urls

SECRET = "s3cret"
DAG, RUN, TASK = "f__approve", "manual__2026-01-01T00:00:00+00:00", "a_approval"


# --- registration -----------------------------------------------------------------------------------


def test_the_plugin_mounts_the_approvals_app_under_openflow() -> None:
    plugin = OpenFlowPlugin()
    assert plugin.name == "openflow"
    assert plugin.fastapi_apps == [{"app": api.app, "url_prefix": "/openflow", "name": "OpenFlow approvals"}]
    paths = {route.path for route in api.app.routes}
    assert "/approvals/{dag_id}/{run_id}/{task_id}" in paths
    assert "/approvals/{dag_id}/{run_id}/{task_id}/{map_index}" in paths  # a loop iteration's
    assert "/{action}/{dag_id}/{run_id}/{task_id}/{resume_id}/{expires}/{sig}" in paths


def test_airflow_finds_the_plugin_by_its_entry_point() -> None:
    from importlib.metadata import entry_points

    (found,) = [e for e in entry_points(group="airflow.plugins") if e.name == "openflow"]
    assert found.value == "airflow_openflow.plugin:OpenFlowPlugin" and found.load() is OpenFlowPlugin


def test_loading_the_plugin_does_not_import_the_api_server() -> None:
    """Every Airflow process loads plugins, a worker at each task start: the app is imported only
    when the API server asks for it."""
    code = (
        "import sys, airflow_openflow.plugin\nprint(sorted(m for m in sys.modules if 'approvals_api' in m))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


# --- the signed links -------------------------------------------------------------------------------


class FakeServer:
    """The API-server functions the plugin imports, over a dict of XComs."""

    def __init__(self) -> None:
        self.session = object()
        self.secret: str | None = SECRET
        self.state: str | None = "awaiting_input"
        self.started_by: str | None = "starter"
        self.map_index = -1  # the waiting approval's instance: -1 unmapped, else a loop iteration
        self.xcoms: dict[tuple[str, str, str, int, str], Any] = {}
        self.recorded: list[dict[str, Any]] = []
        self.rules()

    def rules(self, **rules: Any) -> None:
        base: dict[str, Any] = {"form_schema": None, "self_approval_disabled": False, "approvers": []}
        self.xcoms[(DAG, RUN, TASK, self.map_index, RULES_KEY)] = approval_rules(**{**base, **rules})

    def used_links(self) -> Any:
        return self.xcoms.get((DAG, RUN, TASK, self.map_index, api.USED_LINKS_KEY))

    # The functions, with the signatures of compat/api_server.py.
    def get_variable(self, key: str) -> str | None:
        return self.secret if key == SECRET_VARIABLE else None

    def metadata_session(self) -> Any:
        return contextlib.nullcontext(self.session)

    def read_task_xcom(
        self, session: Any, *, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1
    ) -> Any:
        assert session is self.session
        return self.xcoms.get((dag_id, run_id, task_id, map_index, key))

    def write_task_xcom(
        self,
        session: Any,
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str,
        value: Any,
        map_index: int = -1,
    ) -> None:
        assert session is self.session
        self.xcoms[(dag_id, run_id, task_id, map_index, key)] = value

    def task_instance_state(
        self, session: Any, *, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> str | None:
        return (
            self.state if (dag_id, run_id, task_id, map_index) == (DAG, RUN, TASK, self.map_index) else None
        )

    def run_started_by(self, session: Any, *, dag_id: str, run_id: str) -> str | None:
        return self.started_by

    def record_hitl_answer(
        self,
        session: Any,
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        answer: Any,
        user: Any,
        map_index: int = -1,
    ) -> Any:
        assert session is self.session
        self.recorded.append(
            {
                "where": (dag_id, run_id, task_id) if map_index < 0 else (dag_id, run_id, task_id, map_index),
                "chosen": list(answer.chosen_options),
                "params_input": answer.params_input,
                "user": (user.get_id(), user.get_name()),
            }
        )
        return {"recorded": True}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    fake = FakeServer()
    for name in (
        "get_variable",
        "metadata_session",
        "read_task_xcom",
        "write_task_xcom",
        "task_instance_state",
        "run_started_by",
        "record_hitl_answer",
    ):
        monkeypatch.setattr(api, name, getattr(fake, name))
    return fake


@pytest.fixture
def client() -> Iterator[TestClient]:
    """The plugin's app mounted where the API server mounts it."""
    (entry,) = OpenFlowPlugin().fastapi_apps
    root = FastAPI()
    root.mount(entry["url_prefix"], entry["app"])
    with TestClient(root) as test_client:
        yield test_client


def links(
    approver: str | None = "dora", lifetime_s: float = 600, secret: str = SECRET, map_index: int = -1
) -> dict[str, str]:
    """Links as ``wmill.get_resume_urls()`` makes them in the task (in loop iteration ``map_index``)."""
    return resume_urls(
        base_url="http://testserver",
        secret=secret,
        dag_id=DAG,
        run_id=RUN,
        task_id=TASK,
        lifetime_s=lifetime_s,
        approver=approver,
        map_index=map_index,
    )


def _resume_id(link: str) -> int:
    return int(link.split("?")[0].split("/")[-3])


def test_a_valid_link_records_the_answer_as_its_approver(server: FakeServer, client: TestClient) -> None:
    link = links()["resume"]
    response = client.post(link, json={"ok": 1})
    assert response.status_code == 200 and response.json() == {"recorded": True}
    assert server.recorded == [
        {
            "where": (DAG, RUN, TASK),
            "chosen": ["Approve"],
            "params_input": {"ok": 1},
            "user": ("dora", "dora"),
        }
    ]
    assert server.used_links() == [_resume_id(link)]


def test_a_loop_iteration_link_answers_that_iteration_only(server: FakeServer, client: TestClient) -> None:
    server.map_index = 2
    server.rules()
    made = links(map_index=2)
    assert made["approvalPage"].endswith(f"/tasks/{TASK}/mapped/2/required_actions")  # the UI's page of it
    other = made["resume"].replace("map_index=2", "map_index=1")
    assert client.post(other, json={}).status_code == 403  # the map index is signed
    unmapped = made["resume"].replace("&map_index=2", "")
    assert client.post(unmapped, json={}).status_code == 403
    assert client.post(made["resume"], json={"ok": 1}).status_code == 200
    assert [r["where"] for r in server.recorded] == [(DAG, RUN, TASK, 2)]
    assert server.used_links() == [_resume_id(made["resume"])]


def test_a_link_works_once(server: FakeServer, client: TestClient) -> None:
    link = links()["resume"]
    assert client.post(link, json={}).status_code == 200
    again = client.post(link, json={})
    assert again.status_code == 409 and "already been used" in again.json()["detail"]
    assert len(server.recorded) == 1


def test_the_cancel_link_rejects(server: FakeServer, client: TestClient) -> None:
    assert client.get(links()["cancel"]).status_code == 200
    assert server.recorded[0]["chosen"] == ["Reject"] and server.recorded[0]["params_input"] == {}


def test_a_get_link_carries_its_payload_in_base64(server: FakeServer, client: TestClient) -> None:
    payload = base64.urlsafe_b64encode(json.dumps("from link").encode()).decode().rstrip("=")
    assert client.get(f"{links()['resume']}&payload={payload}").status_code == 200
    assert server.recorded[0]["params_input"] == {PAYLOAD_KEY: "from link"}  # HITL keeps objects only


@pytest.mark.parametrize(
    "tamper",
    [
        lambda link: link.replace("approver=dora", "approver=mallory"),
        lambda link: link.rsplit("/", 1)[0] + "/AAAA" + "?" + link.split("?")[1],
        lambda link: link.replace(f"/{RUN.replace(':', '%3A').replace('+', '%2B')}/", "/other_run/"),
    ],
    ids=["approver", "signature", "run"],
)
def test_a_link_with_a_bad_signature_is_refused(server: FakeServer, client: TestClient, tamper: Any) -> None:
    link = links()["resume"]
    forged = tamper(link)
    assert forged != link
    response = client.post(forged, json={})
    assert response.status_code == 403 and response.json()["detail"] == "invalid resume link"
    assert server.recorded == [] and server.used_links() is None


def test_a_link_signed_with_another_secret_or_without_one_is_refused(
    server: FakeServer, client: TestClient
) -> None:
    assert client.post(links(secret="other")["resume"], json={}).status_code == 403
    server.secret = None
    assert client.post(links()["resume"], json={}).status_code == 403
    assert server.recorded == []


def test_an_expired_link_is_gone(server: FakeServer, client: TestClient) -> None:
    response = client.post(links(lifetime_s=-5)["resume"], json={})
    assert response.status_code == 410 and "expired" in response.json()["detail"]
    assert server.recorded == []


def test_a_payload_that_is_not_json_is_a_bad_request(server: FakeServer, client: TestClient) -> None:
    link = links()["resume"]
    response = client.post(link, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not JSON" in response.json()["detail"]
    bad = base64.b64encode(b"{nope").decode()
    assert client.get(f"{link}&payload={bad}").status_code == 400
    assert server.recorded == [] and server.used_links() is None


@pytest.mark.parametrize("state", [None, "scheduled", "running", "success", "failed"])
def test_a_link_to_an_approval_that_is_not_waiting_conflicts(
    server: FakeServer, client: TestClient, state: str | None
) -> None:
    server.state = state
    response = client.post(links()["resume"], json={})
    assert response.status_code == 409 and "not waiting" in response.json()["detail"]
    assert server.recorded == []


@pytest.mark.parametrize("rules", [{"user_auth_required": True}, {"groups": ["ops"]}])
def test_an_approval_that_needs_a_login_refuses_links(
    server: FakeServer, client: TestClient, rules: dict[str, Any]
) -> None:
    server.rules(**rules)
    response = client.post(links()["resume"], json={})
    assert response.status_code == 403 and "logged-in approver" in response.json()["detail"]
    assert server.recorded == []


def test_the_flow_rules_apply_to_a_link_and_a_refused_answer_leaves_it_usable(
    server: FakeServer, client: TestClient
) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    server.rules(form_schema=schema)
    link = links()["resume"]
    refused = client.post(link, json={"n": "three"})
    assert refused.status_code == 422 and "resume_form.schema" in refused.json()["detail"]
    assert server.used_links() is None  # the link is not spent by a refused answer
    assert client.post(link, json={"n": 3}).status_code == 200


def test_the_run_starter_may_not_answer_with_self_approval_disabled(
    server: FakeServer, client: TestClient
) -> None:
    server.rules(self_approval_disabled=True)
    server.started_by = "dora"
    response = client.post(links()["resume"], json={})
    assert response.status_code == 403 and "self_approval_disabled" in response.json()["detail"]
    assert client.post(links(approver="eli")["resume"], json={}).status_code == 200


def test_an_approver_counts_once(server: FakeServer, client: TestClient) -> None:
    server.rules(approvers=["dora"])
    response = client.post(links()["resume"], json={})
    assert response.status_code == 409 and "already approved" in response.json()["detail"]


def test_a_link_without_an_approver_is_recorded_as_unknown(server: FakeServer, client: TestClient) -> None:
    assert client.post(links(approver=None)["resume"], json={}).status_code == 200
    assert server.recorded[0]["user"] == ("unknown", "unknown")
