"""What a DAG-file parse imports: only what the flows' DAGs need. A worker parses the DAG file before
every task, so a heavy import is paid by every step (bench/deployment_load.py found 0.4 s a task)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.flows import flow, py

PROBE = """
import sys
from airflow_openflow import load_openflow_dags
dags = load_openflow_dags(sys.argv[1])
heavy = ["airflow.api.common.trigger_dag", "airflow.providers.standard.operators.trigger_dagrun", "quickjs"]
print(len(dags), [name for name in heavy if name in sys.modules])
"""


def test_parsing_flows_without_sub_flows_does_not_import_airflows_trigger_dag(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "plain.json").write_text(json.dumps(flow(py("a", "return 1"), py("b", "return 2"))))
    env = {**os.environ, "AIRFLOW__OPENFLOW__PARSE_CACHE": "False"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "flows")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "1 []"
