"""Windmill variables and resources, resolved from Airflow Variables and Connections.

The path rule (documented in docs/mapping.md): a Windmill path such as ``f/team/api_key`` names the
Airflow Variable or Connection whose key is the path with every ``/`` replaced by ``__``
(``f__team__api_key``), which also works as ``AIRFLOW_VAR_F__TEAM__API_KEY`` /
``AIRFLOW_CONN_F__TEAM__API_KEY``. Variables are also looked up under the raw path.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_openflow.runtime.errors import StepError, error_object


def mask_secret(value: Any, name: str | None = None) -> None:
    from airflow.sdk.log import mask_secret as airflow_mask_secret

    airflow_mask_secret(value, name)


def airflow_key(path: str) -> str:
    return path.strip("/").replace("/", "__")


def get_variable(path: str) -> Any:
    from airflow.sdk import Variable

    missing = object()
    for key in dict.fromkeys((airflow_key(path), path)):
        value = Variable.get(key, default=missing)
        if value is not missing:
            # Airflow's rule: masked in logs when the name looks sensitive (password, token, ...).
            mask_secret(value, name=key)
            return value  # Windmill variables are strings; so are Airflow Variables
    raise StepError(
        error_object(
            "VariableNotFound",
            f"Windmill variable {path!r} has no Airflow Variable: create one with key {airflow_key(path)!r}",
        )
    )


def get_resource(path: str) -> Any:
    """The Connection ``airflow_key(path)`` as a Windmill resource; else a Variable of that key
    holding the resource's JSON (what ``wmill.set_resource`` writes: workers cannot create
    Connections)."""
    from airflow.sdk import Connection, Variable

    conn_id = airflow_key(path)
    try:
        conn = Connection.get(conn_id)
    except Exception as exc:  # the SDK raises its own not-found error types
        stored = Variable.get(conn_id, default=None)
        if stored is not None:
            try:
                resource = json.loads(stored)
            except ValueError:
                resource = stored
            mask_secret(resource)
            return resource
        raise StepError(
            error_object(
                "ResourceNotFound",
                f"Windmill resource {path!r} has no Airflow Connection: "
                f"create one with id {conn_id!r} ({exc})",
            )
        ) from exc
    resource = connection_to_resource(conn)
    if conn.password:
        mask_secret(conn.password)
    mask_secret(resource)  # walks the object: values under sensitive keys are masked in logs
    return resource


def connection_to_resource(conn: Any) -> dict[str, Any]:
    """A Windmill resource is a JSON object. The Connection's extra JSON is that object; the standard
    fields that are set (host, port, login, password, schema) are added under Windmill's usual names
    unless the extra already has them."""
    resource: dict[str, Any] = dict(conn.extra_dejson or {})
    standard = {
        "host": conn.host,
        "port": conn.port,
        "user": conn.login,
        "password": conn.password,
        "dbname": conn.schema,
    }
    for key, value in standard.items():
        if value not in (None, "") and key not in resource:
            resource[key] = value
    return resource


def resume_link_secret() -> str:
    """The secret that signs resume links (an Airflow Variable, created by the first step that needs
    it); the API server's plugin reads the same Variable to verify them."""
    import secrets

    from airflow.sdk import Variable

    from airflow_openflow.runtime.resume_links import SECRET_VARIABLE

    value = Variable.get(SECRET_VARIABLE, default=None)
    if not value:
        value = secrets.token_urlsafe(32)
        Variable.set(SECRET_VARIABLE, value, description="airflow-openflow: signs approval resume links")
    mask_secret(value)
    return str(value)
