"""``./shared`` (``same_worker``) and large results in S3 under a real DAG run: ``run_flow`` in
executor mode (each step in a task process of its own, a real metadata database) with the
object-storage XCom backend and ``[openflow] shared_directory_base`` pointing at moto's S3 server
on loopback (docs/large-results.md, docs/mapping.md#the-shared-directory).

The run happens in a Python process of its own with a fresh ``AIRFLOW_HOME``: the XCom backend is
resolved once per process when Airflow's task SDK is imported, and every task process must see the
same configuration, as on real workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BUCKET = "openflow-runs"
BACKEND = "airflow.providers.common.io.xcom.backend.XComObjectStorageBackend"

_RUN = r"""
import json, sys
from airflow_openflow import run_flow

make = ("import pathlib\n"
        "def main():\n"
        "    pathlib.Path('shared/note.txt').write_text('written by make')\n"
        "    return {'blob': 'x' * 20000, 'n': 1}\n")
use = ("def main(made):\n"
       "    note = open('shared/note.txt').read()\n"
       "    return {'note': note, 'len': len(made['blob']), 'n': made['n']}\n")
document = {
    "summary": "shared folder and a large result in S3",
    "value": {"same_worker": True, "modules": [
        {"id": "make", "value": {"type": "rawscript", "language": "python3", "content": make,
                                 "input_transforms": {}}},
        {"id": "use", "value": {"type": "rawscript", "language": "python3", "content": use,
                                "input_transforms": {"made": {"type": "javascript",
                                                              "expr": "results.make"}}}},
    ]},
}
outcome = run_flow(document, {}, mode="executor")
print(json.dumps({"status": outcome.status, "mode": outcome.mode, "result": outcome.result,
                  "dag_id": outcome.dag_id, "run_id": outcome.run_id}))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _client(port: int) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def moto_server(tmp_path: Path) -> Iterator[int]:
    """moto's S3 server as a process of its own on a free loopback port; stopped by its pid."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    port = _free_port()
    log = (tmp_path / "moto.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto's server did not start: {(tmp_path / 'moto.log').read_text()}")
            time.sleep(0.3)
        _client(port).create_bucket(Bucket=BUCKET)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)
        log.close()


def test_shared_folder_and_large_result_in_s3_under_the_executor(tmp_path: Path, moto_server: int) -> None:
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": f"http://127.0.0.1:{moto_server}", "region_name": "us-east-1"},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "OPENFLOW_RUN_MODE"}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_MOTO_S3": json.dumps(connection),
            "AIRFLOW__CORE__XCOM_BACKEND": BACKEND,
            "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH": f"s3://moto_s3@{BUCKET}/xcom",
            "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_THRESHOLD": "1000",
            "AIRFLOW__OPENFLOW__SHARED_DIRECTORY_BASE": f"s3://moto_s3@{BUCKET}/shared",
            "PYTHONPATH": str(REPO),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", _RUN], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    # "use" ran in a task process of its own and read both the file "make" left in ./shared and
    # make's 20 kB result, through S3.
    assert (report["status"], report["mode"]) == ("success", "executor"), str(report["result"])[:2000]
    assert report["result"] == {"note": "written by make", "len": 20000, "n": 1}

    # The objects are in the bucket: make's result under the XCom path, the shared folder's
    # manifests and the file under <base>/<dag_id>/<run_id>/.
    client = _client(moto_server)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    xcom = [k for k in keys if k.startswith(f"xcom/{report['dag_id']}/{report['run_id']}/make/")]
    assert len(xcom) == 1, keys
    stored = json.loads(client.get_object(Bucket=BUCKET, Key=xcom[0])["Body"].read())
    assert stored == {"blob": "x" * 20000, "n": 1}
    run = f"shared/{report['dag_id']}/{report['run_id']}/"
    notes = [k for k in keys if k.startswith(run + "objects/") and k.endswith("/note.txt")]
    assert len(notes) == 1, keys
    assert client.get_object(Bucket=BUCKET, Key=notes[0])["Body"].read() == b"written by make"
    assert any(k.startswith(run + "manifests/") for k in keys), keys
