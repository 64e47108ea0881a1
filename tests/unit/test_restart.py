"""restart.py without a server: Windmill step id -> the task ids to clear, on DAGs the compiler built
(their task list shaped as ``GET /api/v2/dags/{dag_id}/tasks`` returns it), and the printed list."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any, ClassVar

import pytest

from airflow_openflow.cli import main
from airflow_openflow.compile import build_dag
from airflow_openflow.restart import (
    RestartError,
    TaskInfo,
    clear_targets,
    format_instances,
    loops,
    step_ids,
    step_tasks,
)
from airflow_openflow.spec import load_flow


def step(step_id: str) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "identity"}}


def loop(step_id: str, *body: dict[str, Any], parallel: bool = False) -> dict[str, Any]:
    iterator = {"type": "javascript", "expr": "[1, 2, 3]"}
    value = {"type": "forloopflow", "iterator": iterator, "modules": list(body), "parallel": parallel}
    return {"id": step_id, "value": value}


def branchone(step_id: str, branch: list[dict[str, Any]], default: list[dict[str, Any]]) -> dict[str, Any]:
    value = {"type": "branchone", "branches": [{"expr": "true", "modules": branch}], "default": default}
    return {"id": step_id, "value": value}


def branchall(step_id: str, *branches: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "branchall", "branches": [{"modules": b} for b in branches]}}


def tasks_of(*modules: dict[str, Any]) -> dict[str, TaskInfo]:
    """The DAG's tasks as the REST API lists them."""
    loaded = load_flow({"summary": "S", "value": {"modules": list(modules)}})
    assert loaded.flow is not None, loaded.errors
    dag = build_dag(loaded.flow, dag_id="x")
    return {
        t.task_id: TaskInfo(
            t.task_id, tuple(sorted(t.downstream_task_ids)), t.doc_md or "", t.task_id.count(".") > 0
        )
        for t in dag.tasks
    }


FLOW = (
    step("a"),
    loop("seq", step("s1"), step("s2")),
    loop("par", step("p1"), parallel=True),
    branchone("one", [step("b1")], [step("d1")]),
    branchall("all", [step("x1")], [step("x2")]),
    step("z"),
)


def test_a_plain_top_level_step_is_its_task() -> None:
    assert clear_targets("a", tasks_of(*FLOW)) == ["a"]
    assert clear_targets("z", tasks_of(*FLOW)) == ["z"]


def test_a_loop_starts_at_its_items_task() -> None:
    targets = step_tasks("seq", tasks_of(*FLOW))
    assert "seq_items" in targets and "seq" in targets
    assert set(targets) <= {"seq_items", "seq", "seq_iterations.s1", "seq_iterations.s2"}


def test_a_branchone_starts_at_its_chooser_and_a_branchall_at_its_branches() -> None:
    tasks = tasks_of(*FLOW)
    assert "one_choose" in step_tasks("one", tasks)
    assert {"all_branch_0.x1", "all_branch_1.x2"} <= set(step_tasks("all", tasks))


def test_a_step_inside_a_top_level_group_is_its_grouped_task() -> None:
    tasks = tasks_of(*FLOW)
    assert clear_targets("s2", tasks) == ["seq_iterations.s2"]
    assert clear_targets("b1", tasks) == ["one_branch_0.b1"]
    assert clear_targets("x2", tasks) == ["all_branch_1.x2"]
    assert clear_targets("seq_iterations.s2", tasks) == ["seq_iterations.s2"]  # a task id as well


def test_an_unknown_step_lists_the_steps() -> None:
    tasks = tasks_of(*FLOW)
    with pytest.raises(RestartError, match="no step 'nope'") as raised:
        clear_targets("nope", tasks)
    message = str(raised.value)
    for known in ("a", "seq", "s1", "s2", "par", "p1", "one", "b1", "d1", "all", "x1", "x2", "z"):
        assert f" {known}," in message or message.endswith(f" {known}")
    for helper in ("flow_result", "seq_items", "one_choose"):
        assert helper not in message
    assert set(step_ids(tasks)) >= {"a", "seq", "s1", "z"}


def test_an_approval_in_a_loop_is_no_step_of_its_own_but_part_of_the_iteration() -> None:
    asking = {**step("s1"), "suspend": {"required_events": 1, "timeout": 60}}
    tasks = tasks_of(loop("seq", asking, step("s2")))
    assert "s1_approval" not in step_ids(tasks) and {"s1", "s2"} <= set(step_ids(tasks))
    assert loops(tasks)["seq"].body == (
        "seq_iterations.s1",
        "seq_iterations.s1_approval",
        "seq_iterations.s2",
    )


def test_loops_know_whether_they_are_sequential() -> None:
    found = loops(tasks_of(*FLOW))
    assert found["seq"].parallel is False and found["seq"].body == ("seq_iterations.s1", "seq_iterations.s2")
    assert found["par"].parallel is True and found["par"].body == ("par_iterations.p1",)


def test_iteration_of_a_sequential_loop_reruns_it_and_the_later_ones() -> None:
    tasks = tasks_of(*FLOW)
    assert clear_targets("seq", tasks, iteration=1, map_indexes=[0, 1, 2]) == [
        ["seq_iterations.s1", 1],
        ["seq_iterations.s1", 2],
    ]
    # From a body step: that step of iteration N, then the whole later iterations.
    assert clear_targets("s2", tasks, iteration=0, map_indexes=[0, 1, 2]) == [
        ["seq_iterations.s2", 0],
        ["seq_iterations.s1", 1],
        ["seq_iterations.s1", 2],
    ]


def test_iteration_of_a_parallel_loop_reruns_that_iteration() -> None:
    tasks = tasks_of(*FLOW)
    assert clear_targets("par", tasks, iteration=1, map_indexes=[0, 1, 2]) == [["par_iterations.p1", 1]]


def test_iteration_errors() -> None:
    tasks = tasks_of(*FLOW)
    with pytest.raises(RestartError, match="no iteration 5"):
        clear_targets("par", tasks, iteration=5, map_indexes=[0, 1, 2])
    with pytest.raises(RestartError, match="needs a top-level for-loop"):
        clear_targets("a", tasks, iteration=0, map_indexes=[0])


def test_the_printed_list() -> None:
    text = format_instances(
        [
            {"task_id": "b", "map_index": -1, "state": "failed"},
            {"task_id": "l_iterations.s", "map_index": 2, "state": None},
        ],
        dry_run=True,
        dag_id="d",
        run_id="r",
    )
    assert text.splitlines()[0] == "Would clear 2 task instance(s) of run r of d:"
    assert "b               -          failed" in text
    assert "l_iterations.s  2          none" in text
    assert "dry run" in text


class _FakeApi(http.server.BaseHTTPRequestHandler):
    """Just enough of Airflow's API: a simple auth manager that hands out tokens without
    credentials (GET /auth/token), one DAG ``d`` with tasks a -> b, one run ``r``."""

    requests: ClassVar[list[tuple[str, str, str | None, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, self.headers.get("Authorization"), None))
        if self.path == "/auth/token":
            self._reply(201, {"access_token": "free"})
        elif self.path in ("/api/v2/dags/d", "/api/v2/dags/d/dagRuns/r%3A1"):
            self._reply(200, {})
        elif self.path == "/api/v2/dags/d/tasks":
            tasks = [
                {"task_id": "a", "downstream_task_ids": ["b"]},
                {"task_id": "b", "downstream_task_ids": ["flow_result"]},
                {"task_id": "flow_result", "downstream_task_ids": []},
            ]
            self._reply(200, {"tasks": tasks, "total_entries": 3})
        else:
            self._reply(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, self.headers.get("Authorization"), body))
        cleared = [{"task_id": t, "map_index": -1, "state": "success"} for t in ("b", "flow_result")]
        self._reply(200, {"task_instances": cleared, "total_entries": 2})


def test_the_rest_calls_with_a_token_handed_out_without_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AIRFLOW_API_TOKEN", raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeApi.requests.clear()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert main(["restart", "d", "r:1", "--from", "b", "--dry-run", "--api-url", url]) == 0
        assert capsys.readouterr().out.startswith("Would clear 2 task instance(s) of run r:1 of d:")
        assert main(["restart", "d", "r:1", "--from", "x", "--api-url", url]) == 2
        assert "no step 'x' in this DAG; its steps: a, b" in capsys.readouterr().err
        assert main(["restart", "d", "r:2", "--from", "b", "--api-url", url]) == 2
        assert "run 'r:2' of DAG 'd' not found" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()
    assert _FakeApi.requests[0][:3] == ("GET", "/auth/token", None)
    posts = [r for r in _FakeApi.requests if r[0] == "POST"]
    assert len(posts) == 1  # the unknown step never reached the clear call
    _, path, auth, body = posts[0]
    assert (path, auth) == ("/api/v2/dags/d/clearTaskInstances", "Bearer free")
    assert body == {
        "dag_run_id": "r:1",
        "task_ids": ["b"],
        "include_downstream": True,
        "include_upstream": False,
        "only_failed": False,
        "dry_run": True,
        "reset_dag_runs": True,
    }
