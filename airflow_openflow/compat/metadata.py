"""The ``run_flow`` runner's use of Airflow internals (checked on Airflow 3.3.2).

``run_flow`` is a small Airflow of its own in the caller's process: it sets Airflow's configuration
before or after Airflow was imported, creates the metadata database, runs ``DAG.test`` and reads the
outcome of the run from the database. Airflow has no public API for these (``airflow db migrate`` and
the REST API need a running deployment).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping
from typing import Any


def apply_live_config(settings: Mapping[str, str], *, dags_folder: str) -> None:
    """Apply ``AIRFLOW__SECTION__OPTION`` settings to the configuration of an Airflow that was
    imported before they were set in the environment. Public replacement: none (Airflow reads the
    environment once, at import)."""
    import sys

    if "airflow.configuration" not in sys.modules:
        return  # Airflow reads the environment when it is imported
    from airflow import settings as airflow_settings
    from airflow.configuration import conf

    for key, value in settings.items():
        if key.startswith("AIRFLOW__"):
            section, option = key[len("AIRFLOW__") :].lower().split("__", 1)
            conf.set(section, option, value)
    airflow_settings.DAGS_FOLDER = dags_folder  # read once at import; the dags-folder bundle uses it


#: Where fresh SQLite metadata databases are kept as templates, one per Airflow version (default:
#: ``$XDG_CACHE_HOME/airflow-openflow``, else ``~/.cache/airflow-openflow``; empty: no templates).
DB_TEMPLATE_DIR_ENV = "OPENFLOW_DB_TEMPLATE_DIR"


def create_metadata_db() -> None:
    """Create (or upgrade) the metadata database of ``AIRFLOW_HOME``: what ``airflow db migrate``
    does, in process. Public replacement: the CLI command (a subprocess of several seconds).

    A new SQLite database starts as a copy of a template made by an earlier call with the same
    Airflow version (creating one runs every migration: ~10 s; ``initdb`` on the copy then checks
    it in ~1 s). Other databases, or no template, are created by ``initdb`` alone."""
    import airflow
    from airflow import settings as airflow_settings
    from airflow.utils import db

    target = _new_sqlite_file(str(airflow_settings.SQL_ALCHEMY_CONN or ""))
    template = _template_dir()
    if target is not None and template is not None:
        template = template / f"airflow-{airflow.__version__}-sqlite-{_sqlite_version()}.db"
        if template.is_file():
            _copy_atomically(template, target)
            target = None  # not a fresh database: never saved as a template
    db.initdb()
    if target is not None and template is not None and target.is_file() and not template.exists():
        with contextlib.suppress(OSError, sqlite3.Error):  # a cache that cannot be written costs time only
            template.parent.mkdir(parents=True, exist_ok=True)
            _copy_atomically(target, template, backup=True)


def _new_sqlite_file(conn: str) -> Any:
    """The file of a SQLite ``sql_alchemy_conn`` that does not exist yet, or None."""
    from pathlib import Path

    prefix = "sqlite:///"
    if not conn.startswith(prefix):
        return None
    path = conn[len(prefix) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    file = Path(path)
    return None if file.exists() else file


def _template_dir() -> Any:
    import os
    from pathlib import Path

    configured = os.environ.get(DB_TEMPLATE_DIR_ENV)
    if configured is not None:
        return Path(configured) if configured else None
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "airflow-openflow"


def _sqlite_version() -> str:
    return sqlite3.sqlite_version


def _copy_atomically(source: Any, target: Any, *, backup: bool = False) -> None:
    """Copy to a temporary name next to ``target``, then rename: a reader never sees half a file.
    ``backup``: through SQLite's backup API, a consistent copy of a database in use (its WAL too)."""
    import os
    import shutil
    import tempfile

    handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        if backup:
            with (
                contextlib.closing(sqlite3.connect(source)) as src,
                contextlib.closing(sqlite3.connect(partial)) as dst,
            ):
                src.backup(dst)
        else:
            shutil.copyfile(source, partial)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def run_outcome_rows(
    *, dag_id: str, run_id: str, task_id: str, keys: list[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the XComs ``keys`` of ``task_id``, read through the configured XCom backend; the state of
    every task instance of the run, ``task`` or ``task[map_index]``) of a finished DAG run.
    Public replacement: the REST API of a running API server."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key.in_(keys),
            )
        ).all()
        values = {row.key: _xcom_value(row) for row in rows}
        states = {
            ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state)
            for ti in session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            )
        }
    return values, states


def latest_run_task_rows(dag_id: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(run id, its task instances) of the newest run of ``dag_id``: each ``task_id``,
    ``map_index``, ``state`` (None while not scheduled), ``start_date``, ``end_date`` (datetimes or
    None) and ``try_number``. For a live view of a run in progress (``run_view.py``). Public
    replacement: the REST API of a running API server."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run_id = session.scalar(
            select(DagRun.run_id).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
        )
        if run_id is None:
            return None, []
        rows = [
            {
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "state": None if ti.state is None else str(ti.state),
                "start_date": ti.start_date,
                "end_date": ti.end_date,
                "try_number": ti.try_number,
            }
            for ti in session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            )
        ]
    return run_id, rows


def _xcom_value(row: Any) -> Any:
    """An XCom row's value through the configured XCom backend: with common-io's object-storage
    backend a large result's row holds only a reference to the object (docs/large-results.md)."""
    from airflow.models.xcom import XComModel
    from airflow.sdk.bases.xcom import BaseXCom
    from airflow.sdk.execution_time.xcom import resolve_xcom_backend

    backend = resolve_xcom_backend()
    if backend is BaseXCom:
        return XComModel.deserialize_value(row)
    return backend.deserialize_value(row)


def expire_awaiting_input_sweep(log: logging.Logger) -> Callable[[], None]:
    """One round of the scheduler's sweep that ends HITL tasks whose timeout has passed.

    Why: approval tasks wait in ``awaiting_input`` until answered or until their timeout, which only
    the scheduler enforces; ``DAG.test`` has no scheduler. The sweep is a scheduler method that only
    needs a logger of its own. Public replacement: none (a timeout enforced by the task itself)."""
    import types

    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    sweeper = types.SimpleNamespace(log=log)
    lock = threading.Lock()

    def sweep() -> None:
        with lock:
            SchedulerJobRunner.check_awaiting_input_timeouts(sweeper)

    return sweep
