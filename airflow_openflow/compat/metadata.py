"""The ``run_flow`` runner's use of Airflow internals (checked on Airflow 3.3.2).

``run_flow`` is a small Airflow of its own in the caller's process: it sets Airflow's configuration
before or after Airflow was imported, creates the metadata database, runs ``DAG.test`` and reads the
outcome of the run from the database. Airflow has no public API for these (``airflow db migrate`` and
the REST API need a running deployment).
"""

from __future__ import annotations

import logging
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


def create_metadata_db() -> None:
    """Create (or upgrade) the metadata database of ``AIRFLOW_HOME``: what ``airflow db migrate``
    does, in process. Public replacement: the CLI command (a subprocess of several seconds)."""
    from airflow.utils import db

    db.initdb()


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
