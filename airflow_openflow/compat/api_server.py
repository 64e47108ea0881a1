"""API-server internals the approvals plugin uses (checked on Airflow 3.3.2).

A plugin's FastAPI app runs inside Airflow's API server, next to the core API; Airflow offers no
public API for plugins to authorize users, reach the metadata database or record a HITL answer.
The endpoint refuses what an approval step's rules forbid and then records the answer exactly as
Airflow's own endpoint does, so both answers resume the task the same way.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

# FastAPI dependencies and models of the core API, used in the plugin's route signatures.
# Public replacement: an auth dependency for plugins (none in 3.3).
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag

__all__ = [
    "DagAccessEntity",
    "GetUserDep",
    "SessionDep",
    "UpdateHITLDetailPayload",
    "get_variable",
    "metadata_session",
    "read_task_xcom",
    "record_hitl_answer",
    "requires_access_dag",
    "run_started_by",
    "task_instance_state",
    "write_task_xcom",
]


def metadata_session() -> AbstractContextManager[Any]:
    """A metadata-database session for a route without ``SessionDep`` (a signed-link route that
    must not block the event loop runs its work in a thread). Public replacement: none."""
    from airflow.utils.session import create_session

    return create_session()  # type: ignore[no-any-return]


def get_variable(key: str) -> str | None:
    """An Airflow Variable read in the API server (``airflow.sdk.Variable`` needs a task's
    supervisor). Public replacement: none for server-side code in 3.3."""
    from airflow.models.variable import Variable

    value = Variable.get(key, default_var=None)
    return None if value is None else str(value)


def read_task_xcom(
    session: Any, *, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1
) -> Any:
    """The deserialized XCom ``key`` of a task instance (-1: unmapped), or None.
    Public replacement: the REST API's XCom endpoint (a round trip from inside the server)."""
    from airflow.models.xcom import XComModel

    row = session.scalars(
        XComModel.get_many(run_id=run_id, key=key, task_ids=task_id, dag_ids=dag_id, map_indexes=map_index)
    ).first()
    return XComModel.deserialize_value(row) if row is not None else None


def write_task_xcom(
    session: Any, *, dag_id: str, run_id: str, task_id: str, key: str, value: Any, map_index: int = -1
) -> None:
    """Store the XCom ``key`` of a task instance (-1: unmapped). Public replacement: none (the REST
    API's XCom POST is for a running task's own values)."""
    from airflow.models.xcom import XComModel

    XComModel.set(
        key, value, dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index, session=session
    )


def run_started_by(session: Any, *, dag_id: str, run_id: str) -> str | None:
    """The user name that triggered a DAG run (``self_approval_disabled``)."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return session.scalars(  # type: ignore[no-any-return]
        select(DagRun.triggering_user_name).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    ).first()


def task_instance_state(
    session: Any, *, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> str | None:
    """The state of a task instance (-1: unmapped; ``awaiting_input`` while an approval waits)."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    state = session.scalars(
        select(TaskInstance.state).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    ).first()
    return None if state is None else str(getattr(state, "value", state))


def record_hitl_answer(
    session: Any, *, dag_id: str, run_id: str, task_id: str, answer: Any, user: Any, map_index: int = -1
) -> Any:
    """Record a HITL answer with Airflow's own route function (its checks, and the resume of the
    waiting task). Public replacement: ``PATCH /api/v2/hitlDetails/...`` from inside the server
    would need a user token the plugin does not have."""
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail

    return update_hitl_detail(
        dag_id=dag_id,
        dag_run_id=run_id,
        task_id=task_id,
        update_hitl_detail_payload=answer,
        user=user,
        session=session,
        map_index=map_index,
    )
