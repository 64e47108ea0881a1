"""SQL steps (``postgresql``, ``mysql``) run through the Airflow provider's common-sql hook
(PostgresHook, MySqlHook) in the task process.

- The database: the ``database`` argument, or the script's ``-- database <path>`` line. A
  ``$res:<path>`` (or the path of the annotation) is the Airflow Connection of the documented path
  rule (runtime/connections.py: ``f/team/db`` -> ``f__team__db``), opened by the hook with all of
  its settings; a resource object (Windmill's ``{host, port, user, password, dbname|database, ...}``)
  becomes a Connection in memory.
- The statements: sql_text.py splits them and turns Windmill's placeholders into the driver's bound
  parameters; each runs in autocommit, one after the other, as Windmill runs them.
- The result: sql_values.collect (Windmill's ``result_collection``), cells converted there too.

A database error fails the step with ``ExecutionErr`` and the database's message.
"""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Mapping
from typing import Any

from airflow_openflow.runtime.connections import airflow_key, get_resource, mask_secret
from airflow_openflow.runtime.errors import StepError, error_object, exception_text
from airflow_openflow.runtime.scripts.sql_text import Dialect, prepare_statements, script_annotations
from airflow_openflow.runtime.scripts.sql_values import collect, parameter, row_object

log = logging.getLogger(__name__)

_RESOURCE_PREFIX = "$res:"

#: Resource keys that are Connection fields; every other key is passed as a Connection extra when
#: the hook knows it (``_EXTRAS``).
_FIELDS = {"host": "host", "port": "port", "user": "login", "password": "password"}
_EXTRAS: dict[Dialect, frozenset[str]] = {
    "postgresql": frozenset(
        [
            "sslmode",
            "sslcert",
            "sslkey",
            "sslrootcert",
            "sslcrl",
            "connect_timeout",
            "application_name",
            "options",
            "target_session_attrs",
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
        ]
    ),
    "mysql": frozenset(["charset", "ssl", "ssl_mode", "unix_socket", "connect_timeout", "client"]),
}


def run_postgresql(
    content: str,
    args: Mapping[str, Any],
    *,
    step_id: str,
    workdir: pathlib.Path,
    timeout_s: float | None = None,
) -> Any:
    return _run("postgresql", content, args, step_id=step_id, workdir=workdir, timeout_s=timeout_s)


def run_mysql(
    content: str,
    args: Mapping[str, Any],
    *,
    step_id: str,
    workdir: pathlib.Path,
    timeout_s: float | None = None,
) -> Any:
    return _run("mysql", content, args, step_id=step_id, workdir=workdir, timeout_s=timeout_s)


def _run(
    dialect: Dialect,
    content: str,
    args: Mapping[str, Any],
    *,
    step_id: str,
    workdir: pathlib.Path,
    timeout_s: float | None,
) -> Any:
    database_path, strategy = script_annotations(content)
    database = _RESOURCE_PREFIX + database_path if database_path else args.get("database")
    hook = _hook(dialect, database, step_id=step_id, workdir=workdir)
    try:
        return collect(strategy, _execute(hook, dialect, content, args, timeout_s))
    except StepError:
        raise
    except Exception as exc:
        raise StepError(error_object("ExecutionErr", exception_text(exc), step_id=step_id)) from exc


def _json(value: Any) -> Any:
    """PostgreSQL's JSON parameter: the driver's JSONB wrapper (psycopg 3 or psycopg2)."""
    try:
        from psycopg.types.json import Jsonb

        return Jsonb(value)
    except ImportError:  # psycopg2 only
        from psycopg2.extras import Json

        return Json(value)


def _execute(
    hook: Any, dialect: Dialect, content: str, args: Mapping[str, Any], timeout_s: float | None
) -> list[list[Any]]:
    """The rows of every statement (``[]`` for a statement without rows), in autocommit."""

    def adapt(value: Any, declared_type: str) -> Any:
        return parameter(value, declared_type, dialect, json_wrapper=_json)

    conn = hook.get_conn()
    try:
        # mysql-connector-python (a MySQL Connection's ``client`` extra) keeps ``%%`` as written.
        escape_percent = not type(conn).__module__.startswith("mysql.connector")
        statements = prepare_statements(content, dialect, args, adapt=adapt, escape_percent=escape_percent)
        hook.set_autocommit(conn, True)
        cursor = conn.cursor()
        try:
            if timeout_s:
                _statement_timeout(cursor, dialect, timeout_s)
            log.info("%s: %d statement(s), autocommit", dialect, len(statements))
            results: list[list[Any]] = []
            for statement in statements:
                cursor.execute(statement.sql, statement.params)
                if cursor.description is None:  # no rows: INSERT, CREATE...
                    results.append([])
                    continue
                names = [column[0] for column in cursor.description]
                results.append([row_object(names, row, dialect) for row in cursor.fetchall()])
            return results
        finally:
            cursor.close()
    finally:
        conn.close()


def _statement_timeout(cursor: Any, dialect: Dialect, timeout_s: float) -> None:
    """The step's ``timeout`` as the server's statement time limit (best effort for MySQL, whose
    ``max_execution_time`` covers SELECT only; MariaDB's ``max_statement_time`` covers all)."""
    if dialect == "postgresql":
        cursor.execute("SELECT set_config('statement_timeout', %s, false)", (str(int(timeout_s * 1000)),))
        return
    for sql, value in (
        ("SET SESSION max_statement_time = %s", timeout_s),
        ("SET SESSION max_execution_time = %s", int(timeout_s * 1000)),
    ):
        try:
            cursor.execute(sql, (value,))
            return
        except Exception:
            continue


# -- the database --------------------------------------------------------------------------------


def _hook(dialect: Dialect, database: Any, *, step_id: str, workdir: pathlib.Path) -> Any:
    if isinstance(database, str) and database.startswith(_RESOURCE_PREFIX):
        path = database[len(_RESOURCE_PREFIX) :]
        conn_id = airflow_key(path)
        if _connection_exists(conn_id):
            log.info("%s step %s: Airflow Connection %r (%s)", dialect, step_id, conn_id, database)
            return _hook_class(dialect)(**{_hook_class(dialect).conn_name_attr: conn_id})
        database = get_resource(path)  # a resource stored as a Variable, or ResourceNotFound
    if isinstance(database, str) and database.startswith("datatable://"):
        raise StepError(
            error_object(
                "ExecutionErr",
                f"Windmill data tables ({database!r}) are not supported: give the step a database "
                "resource ('$res:f/folder/name', the Airflow Connection f__folder__name)",
                step_id=step_id,
            )
        )
    if not isinstance(database, Mapping):
        raise StepError(
            error_object(
                "ExecutionErr",
                "Missing database argument: give the step a 'database' argument, a resource "
                "('$res:f/folder/name', the Airflow Connection f__folder__name) or an object "
                "{host, port, user, password, dbname}",
                step_id=step_id,
            )
        )
    hook_class = _hook_class(dialect)
    return hook_class(connection=_connection(dialect, database, workdir))


def _hook_class(dialect: Dialect) -> Any:
    if dialect == "postgresql":
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    return MySqlHook


def _connection_exists(conn_id: str) -> bool:
    from airflow.sdk import Connection

    try:
        Connection.get(conn_id)
    except Exception:  # the SDK raises its own not-found error types
        return False
    return True


def _connection(dialect: Dialect, resource: Mapping[str, Any], workdir: pathlib.Path) -> Any:
    """A Windmill database resource as an Airflow Connection (in memory, never stored)."""
    from airflow.sdk import Connection

    fields: dict[str, Any] = {
        target: resource[key] for key, target in _FIELDS.items() if resource.get(key) not in (None, "")
    }
    if "port" in fields:
        fields["port"] = int(fields["port"])
    schema = resource.get("dbname") or resource.get("database")
    extra = {key: value for key, value in resource.items() if key in _EXTRAS[dialect]}
    if dialect == "postgresql" and resource.get("root_certificate_pem"):
        certificate = workdir / "root.crt"
        certificate.write_text(str(resource["root_certificate_pem"]), encoding="utf-8")
        extra["sslrootcert"] = str(certificate)
    if dialect == "mysql" and extra.get("ssl") is True:
        extra.pop("ssl")
        extra["ssl_mode"] = "REQUIRED"  # Windmill's {ssl: true}: TLS without verifying the certificate
    if fields.get("password"):
        mask_secret(fields["password"])
    conn_type = "postgres" if dialect == "postgresql" else "mysql"
    return Connection(
        conn_id=f"openflow_{conn_type}_resource",
        conn_type=conn_type,
        schema=schema,
        extra=json.dumps(extra) if extra else None,
        **fields,
    )
