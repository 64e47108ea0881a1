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


class TaskIds:
    """Every task id and task-group id of one DAG, so that the ids the compiler adds (``flow_result``,
    ``<id>_items``, ``<id>_branch_<i>``, ``<id>_approval``...) never meet a step id or each other.

    Starts with every step id of the document (nested ones too: ``spec.model.all_modules``); each
    helper id is ``reserve``d in build order, and the ids of the tasks placed inside task groups
    (``<group>.<step>``) are ``record``ed, so one set answers "is this id free" for the whole DAG.
    A helper keeps its documented name unless that is taken; then one ``_`` is appended per collision.
    """

    def __init__(self, step_ids: Iterable[str] = ()) -> None:
        self._taken: set[str] = set(step_ids)

    def reserve(self, wanted: str) -> str:
        """``wanted``, or ``wanted_``, ``wanted__``...: the first id nothing in the DAG has yet."""
        task_id = wanted
        while task_id in self._taken:
            task_id += "_"
        self._taken.add(task_id)
        return task_id

    def record(self, task_ids: Iterable[str]) -> None:
        """Ids placed as they are (a step's own id, prefixed with its task group)."""
        self._taken.update(task_ids)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._taken


def result_task_id(step_ids: Iterable[str]) -> str:
    """The final task is ``flow_result``, or ``flow_result_``... if a step already has that id."""
    return TaskIds(step_ids).reserve("flow_result")
