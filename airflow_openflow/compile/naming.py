"""Stable Airflow ids derived from OpenFlow paths (documented in docs/mapping.md)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_DAG_ID = 250


def dag_id_for_path(workspace_path: str, *, prefix: str = "") -> str:
    """``f/examples/etl`` -> ``f__examples__etl``: each ``/`` becomes ``__``, any other character
    Airflow does not allow in an id becomes ``_``. Depends on the path only, never on the content,
    so a worker can tell which flow to build without reading any file."""
    body = "__".join(_NOT_ALLOWED.sub("_", part) for part in workspace_path.strip("/").split("/") if part)
    dag_id = f"{prefix}{body or 'flow'}"
    if len(dag_id) > MAX_DAG_ID:
        digest = hashlib.sha256(dag_id.encode()).hexdigest()[:10]
        dag_id = f"{dag_id[: MAX_DAG_ID - 12]}__{digest}"
    return dag_id


def dag_id_for_document(summary: str | None, content_hash: str, *, prefix: str = "") -> str:
    """For a document with no path (a dict given to ``run_flow``): summary slug plus content hash."""
    slug = _NOT_ALLOWED.sub("_", (summary or "flow").strip().lower()).strip("_")[:60] or "flow"
    return f"{prefix}openflow_{slug}_{content_hash[:10]}"


def result_task_id(step_ids: Iterable[str]) -> str:
    """The final task is ``flow_result``, or ``flow_result_``... if a step already has that id."""
    taken = set(step_ids)
    task_id = "flow_result"
    while task_id in taken:
        task_id += "_"
    return task_id
