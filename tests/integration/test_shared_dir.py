"""``same_worker`` flows through real DAG runs: the ``./shared`` directory between steps, each step
in a task process of its own (run_flow's LocalExecutor), the folder kept in object storage."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

import airflow_openflow
from tests.flows import flow, py


def _bash(step_id: str, content: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "value": {"type": "rawscript", "language": "bash", "content": content, "input_transforms": {}},
    }


def _shared_root() -> Path:
    return Path(os.environ["AIRFLOW_HOME"]) / "openflow" / "shared"


def test_a_file_written_by_one_step_is_read_by_the_next() -> None:
    writer = py("a", "import pathlib\npathlib.Path('shared/a.txt').write_text('hello from a')\nreturn 1")
    reader = _bash("b", 'echo "{\\"read\\": \\"$(cat ./shared/a.txt)\\"}" > result.json')
    outcome = airflow_openflow.run_flow(_same(writer, reader), {})
    assert (outcome.status, outcome.result) == ("success", {"read": "hello from a"}), outcome.result
    run = _shared_root() / outcome.dag_id / outcome.run_id
    assert (run / "manifests").is_dir() and list((run / "objects").rglob("a.txt"))


def _same(*modules: dict[str, Any]) -> dict[str, Any]:
    document = flow(*modules)
    document["value"]["same_worker"] = True
    return document


def test_windmill_same_worker_case_outer_file_and_a_loop() -> None:
    """Windmill's ``test_deno_flow_same_worker`` (spec 10.2 case 25), in python3: ``a`` writes
    ``outer.txt``; a sequential 3-iteration loop writes ``inner.txt`` (``d``) and reads both
    (``e``); ``c`` reads both after the loop."""
    a = py("a", "open('shared/outer.txt', 'w').write('false 1')\nreturn None")
    d = py("d", "open('shared/inner.txt', 'w').write(f'true {v}')\nreturn None", v="flow_input.iter.value")
    e = py("e", "return open('shared/inner.txt').read() + ',' + open('shared/outer.txt').read()")
    loop = {
        "id": "b",
        "value": {
            "type": "forloopflow",
            "parallel": False,
            "iterator": {"type": "static", "value": [1, 2, 3]},
            "modules": [d, e],
        },
    }
    c = py(
        "c",
        "outer = open('shared/outer.txt').read()\ninner = open('shared/inner.txt').read()\n"
        "return outer + ',' + ','.join(loop) + ',' + inner",
        loop="results.b",
    )
    outcome = airflow_openflow.run_flow(_same(a, loop, c), {})
    assert outcome.status == "success", outcome.result
    assert outcome.result == "false 1,true 1,false 1,true 2,false 1,true 3,false 1,true 3"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_s3_store_that_is_down_fails_the_step_with_the_location(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("s3fs")
    port = _free_port()  # nothing listens there
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {
            "endpoint_url": f"http://127.0.0.1:{port}",
            "region_name": "us-east-1",
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
        },
    }
    # The task processes inherit both: the executor's workers start with each run.
    monkeypatch.setenv("AIRFLOW_CONN_SHARED_DOWN", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__OPENFLOW__SHARED_DIRECTORY_BASE", "s3://shared_down@openflow-shared/runs")
    ran = py("a", "return 'must not matter'")
    outcome = airflow_openflow.run_flow(_same(ran), {})
    assert outcome.status == "failure"
    error = outcome.result["error"]
    assert error["name"] == "SharedDirectoryError" and error["step_id"] == "a"
    location = f"s3://shared_down@openflow-shared/runs/{outcome.dag_id}/{outcome.run_id}"
    assert error["location"] == location
    assert error["message"].startswith(f"shared directory at {location}: cannot list its versions: ")
    assert f"127.0.0.1:{port}" in error["message"]
