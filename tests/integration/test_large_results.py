"""Large step results in object storage: Airflow's object-storage XCom backend (common-io),
configured through the environment, under a real DAG run (docs/large-results.md).

The run happens in a Python process of its own with a fresh ``AIRFLOW_HOME``: the XCom backend is
resolved once per process when Airflow's task SDK is imported, and every task process (forked by
run_flow's executor) must see the same configuration, as on real workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BACKEND = "airflow.providers.common.io.xcom.backend.XComObjectStorageBackend"

_RUN = r"""
import json, sys
from airflow_openflow import run_flow

document = {
    "summary": "large results",
    "value": {"modules": [
        {"id": "make", "value": {"type": "rawscript", "language": "python3",
            "content": "def main():\n    return {'blob': 'x' * 20000, 'n': 1}\n", "input_transforms": {}}},
        {"id": "small", "value": {"type": "rawscript", "language": "python3",
            "content": "def main(made):\n    return {'len': len(made['blob']), 'n': made['n']}\n",
            "input_transforms": {"made": {"type": "javascript", "expr": "results.make"}}}},
        {"id": "use", "value": {"type": "rawscript", "language": "python3",
            "content": "def main(made, r):\n    return {**r, 'echo': made['blob']}\n",
            "input_transforms": {"made": {"type": "javascript", "expr": "results.make"},
                                 "r": {"type": "javascript", "expr": "results.small"}}}},
    ]},
}
outcome = run_flow(document, {})

from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import select

with create_session() as session:
    rows = session.scalars(select(XComModel).where(
        XComModel.dag_id == outcome.dag_id, XComModel.run_id == outcome.run_id,
        XComModel.key == "return_value")).all()
    stored = {row.task_id: row.value for row in rows}
print(json.dumps({"status": outcome.status, "result": outcome.result, "stored": stored}))
"""


def test_a_large_result_goes_to_object_storage_and_the_next_step_reads_it(tmp_path: Path) -> None:
    store = tmp_path / "xcom-store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__") and k != "AIRFLOW_HOME"}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__XCOM_BACKEND": BACKEND,
            "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH": store.as_uri(),
            "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_THRESHOLD": "1000",
            "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_COMPRESSION": "gzip",
            "PYTHONPATH": str(REPO),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", _RUN], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    # The flow result is right: "small" and "use" got "make"'s 20 kB value back from the store, and
    # run_flow reads the (large) flow result through the backend too.
    assert report["status"] == "success", str(report["result"])[:2000]
    assert report["result"] == {"len": 20000, "n": 1, "echo": "x" * 20000}

    # The DB rows of the large results hold only a reference into the store ...
    stored = report["stored"]
    for task_id in ("make", "use", "flow_result"):
        reference = stored[task_id]
        assert isinstance(reference, str), (task_id, str(reference)[:200])
        assert reference.startswith(store.as_uri()) and reference.endswith(".gz"), reference
        assert f"/{task_id}/" in reference
        assert len(reference) < 500
    # ... a small one stays in the DB as it is.
    assert stored["small"] == {"len": 20000, "n": 1}

    # The objects exist in the store, gzip-compressed, and hold the values.
    import gzip

    made = Path(stored["make"].removeprefix("file://"))
    assert made.is_file() and made.is_relative_to(store)
    assert json.loads(gzip.decompress(made.read_bytes())) == {"blob": "x" * 20000, "n": 1}
    assert len(list(store.rglob("*.gz"))) == 3
