"""The SQL runner without a database: a resource object as a Connection, a step without a database.
(Runs against real servers: tests/integration/test_sql_steps.py.)"""

from __future__ import annotations

import pathlib

import pytest

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.runtime.scripts import run_script
from airflow_openflow.runtime.scripts.sql import _connection


def test_a_postgresql_resource_becomes_a_connection(tmp_path: pathlib.Path) -> None:
    resource = {
        "host": "db.internal",
        "port": "5433",
        "user": "etl",
        "password": "pw",
        "dbname": "sales",
        "sslmode": "verify-full",
        "root_certificate_pem": "-----BEGIN CERTIFICATE-----\n",
        "unrelated": "ignored",
    }
    conn = _connection("postgresql", resource, tmp_path)
    assert (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema) == (
        "postgres",
        "db.internal",
        5433,
        "etl",
        "pw",
        "sales",
    )
    certificate = tmp_path / "root.crt"
    assert conn.extra_dejson == {"sslmode": "verify-full", "sslrootcert": str(certificate)}
    assert certificate.read_text() == "-----BEGIN CERTIFICATE-----\n"


def test_a_mysql_resource_becomes_a_connection(tmp_path: pathlib.Path) -> None:
    conn = _connection("mysql", {"host": "h", "user": "root", "database": "shop", "ssl": True}, tmp_path)
    assert (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema) == (
        "mysql",
        "h",
        None,
        "root",
        None,
        "shop",
    )
    assert conn.extra_dejson == {"ssl_mode": "REQUIRED"}


@pytest.mark.parametrize("database", [None, "f/team/db", 42])
def test_a_sql_step_without_a_database_fails_with_execution_error(
    tmp_path: pathlib.Path, database: object
) -> None:
    args = {} if database is None else {"database": database}
    with pytest.raises(StepError) as raised:
        run_script("postgresql", "SELECT 1", args, step_id="q", workdir=tmp_path)
    error = raised.value.error["error"]
    assert error["name"] == "ExecutionErr" and error["step_id"] == "q"
    assert error["message"].startswith("Missing database argument") and "$res:" in error["message"]


def test_windmill_data_tables_are_refused_by_name(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StepError) as raised:
        run_script("postgresql", "SELECT 1", {"database": "datatable://main"}, step_id="q", workdir=tmp_path)
    assert "data tables ('datatable://main') are not supported" in raised.value.error["error"]["message"]
