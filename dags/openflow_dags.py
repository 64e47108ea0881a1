"""Copy this file into your Airflow dags folder: every OpenFlow document under FLOWS becomes a DAG.

FLOWS is the ``flows`` folder next to this file unless ``OPENFLOW_FLOWS_FOLDER`` says otherwise. It
may hold JSON/YAML flow files and Windmill git-sync folders (``f/<folder>/<name>.flow/flow.yaml``).
A broken document shows up as a DAG of the same id whose only task fails with the error; the other
flows load normally.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_openflow import load_openflow_dags

FLOWS = Path(os.environ.get("OPENFLOW_FLOWS_FOLDER", Path(__file__).parent / "flows"))

load_openflow_dags(FLOWS, namespace=globals())
