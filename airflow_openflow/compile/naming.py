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


# Display names (Airflow's ``dag_display_name``, ``task_display_name``, ``group_display_name``):
# what the UI shows instead of the ids, taken from the document's summaries. Ids never change
# with them (clearing, restarts and XCom go by id), so a summary can be edited freely.
MAX_DISPLAY_NAME = 200


def one_line(text: str | None) -> str:
    """One line, bounded: a summary as the UI can show it (empty when there is none)."""
    line = " ".join((text or "").split())
    return line if len(line) <= MAX_DISPLAY_NAME else line[: MAX_DISPLAY_NAME - 3] + "..."


def flow_display_name(summary: str | None, flow_path: str = "", dag_id: str = "") -> str:
    """The flow's ``summary``, else its Windmill path (``f/examples/etl``), else the dag_id."""
    return one_line(summary) or one_line(flow_path) or dag_id


def step_display_name(summary: str | None, step_id: str) -> str:
    """A step's ``summary``, else its id."""
    return one_line(summary) or step_id


def helper_display_name(step_name: str, role: str) -> str:
    """A task the compiler adds for a step: ``Price the order: approval``."""
    return f"{step_name}: {role}"


def branch_display_name(step_name: str, index: int, summary: str | None) -> str:
    """Branch ``index`` of a branchone/branchall: ``Route the order: branch 1 (big orders)``;
    numbered from 1 as in Windmill's editor (the group id keeps the 0-based index)."""
    label = f"branch {index + 1}"
    summary = one_line(summary)
    return helper_display_name(step_name, f"{label} ({summary})" if summary else label)
