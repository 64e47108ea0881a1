"""SQL steps through real DAG runs (``run_flow``) against the PostgreSQL (127.0.0.1:5432) and MariaDB
(127.0.0.1:3306) servers of the test machine. Each test works in a database of its own, created and
dropped here (tests run in parallel)."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import airflow_openflow
from tests.flows import flow, py

HOSTILE = [
    "'; DROP TABLE people; --",
    "x'); DROP TABLE people; --",
    "\\'; DROP TABLE people; #",
    "Robert\"); DELETE FROM people WHERE ('1'='1",
    "$1 ? :name %s %(p1)s 50%",
]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root"}


def _database_name() -> str:
    return f"openflow_sql_{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def _connection_env(path: str, conn_type: str, server: dict[str, Any], database: str) -> Iterator[None]:
    """The Airflow Connection of the Windmill path ``path`` (the executor inherits the environment)."""
    key = "AIRFLOW_CONN_" + path.replace("/", "__").upper()
    os.environ[key] = json.dumps(
        {
            "conn_type": conn_type,
            "host": server["host"],
            "port": server["port"],
            "login": server["user"],
            "schema": database,
        }
    )
    try:
        yield
    finally:
        os.environ.pop(key, None)


@pytest.fixture
def pg() -> Iterator[dict[str, Any]]:
    """A fresh PostgreSQL database with a ``people`` table, and the Connection ``f__sqltest__<db>``."""
    import psycopg

    name = _database_name()
    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(**PG, dbname=name, autocommit=True) as conn:
            conn.execute("CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, age int)")
        path = f"f/sqltest/{name}"
        with _connection_env(path, "postgres", PG, name):
            yield {"path": path, "name": name, "connect": lambda: psycopg.connect(**PG, dbname=name)}
    finally:
        with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mariadb() -> Iterator[dict[str, Any]]:
    """A fresh MariaDB database with a ``people`` table, and the Connection ``f__sqltest__<db>``."""
    import MySQLdb

    name = _database_name()

    def connect(database: str | None = name) -> Any:
        kwargs = {"db": database} if database else {}
        return MySQLdb.connect(host=MARIADB["host"], port=MARIADB["port"], user=MARIADB["user"], **kwargs)

    admin = connect(None)
    try:
        admin.cursor().execute(f"CREATE DATABASE `{name}`")
        conn = connect()
        conn.cursor().execute(
            "CREATE TABLE people (id INT AUTO_INCREMENT PRIMARY KEY, name TEXT NOT NULL, age INT)"
        )
        conn.close()
        path = f"f/sqltest/{name}"
        with _connection_env(path, "mysql", MARIADB, name):
            yield {"path": path, "name": name, "connect": connect}
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def sql(step_id: str, language: str, content: str, database: Any, **transforms: str) -> dict[str, Any]:
    """A SQL step: ``database`` a static value (``$res:...`` or an object), the rest expressions."""
    inputs: dict[str, Any] = {"database": {"type": "static", "value": database}}
    inputs.update({k: {"type": "javascript", "expr": v} for k, v in transforms.items()})
    return {
        "id": step_id,
        "value": {"type": "rawscript", "language": language, "content": content, "input_transforms": inputs},
    }


def _count(connect: Any) -> int:
    conn = connect()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT count(*) FROM people")
        return int(cursor.fetchone()[0])
    finally:
        conn.close()


# -- PostgreSQL ----------------------------------------------------------------------------------

PG_STORE = """\
-- $1 name
-- $2 age = 33
INSERT INTO people (name, age) VALUES ($1::text, $2::int);
SELECT name, age FROM people WHERE name = $1::text
"""


def test_postgresql_hostile_values_are_data_and_the_table_survives(pg: dict[str, Any]) -> None:
    steps = [
        sql(f"s{i}", "postgresql", PG_STORE, f"$res:{pg['path']}", name=f"flow_input.names[{i}]")
        for i in range(len(HOSTILE))
    ]
    run = airflow_openflow.run_flow(flow(*steps), {"names": HOSTILE})
    assert run.status == "success", run.result
    assert run.result == [{"name": HOSTILE[-1], "age": 33}]
    assert _count(pg["connect"]) == len(HOSTILE)  # the table is still there, one row per value
    conn = pg["connect"]()
    try:
        stored = [row[0] for row in conn.execute("SELECT name FROM people ORDER BY id").fetchall()]
    finally:
        conn.close()
    assert stored == HOSTILE


PG_TYPES = """\
-- $1 n
-- $2 label = 'the default'
-- $3 doc
-- $4 day
-- $5 tags
-- $6 price = 9.5
-- result_collection=last_statement_first_row
SELECT $1::int + 1 AS next, $2::text AS label, $3::jsonb AS doc, $4::date + 1 AS day,
       $5::text[] AS tags, $6::numeric * 2 AS price, '50%' AS percent,
       TIMESTAMP '2024-01-02 03:04:05' AS ts, TIMESTAMPTZ '2024-01-02 03:04:05+02' AS tstz,
       '\\x01ff'::bytea AS bin, NULL::text AS nothing
"""


def test_postgresql_typed_placeholders_defaults_and_values(pg: dict[str, Any]) -> None:
    step = sql(
        "typed",
        "postgresql",
        PG_TYPES,
        f"$res:{pg['path']}",
        n="41",
        doc="({a: [1, 'two'], b: {c: null}})",
        day="'2024-02-28'",
        tags="['x', 'y']",
    )
    run = airflow_openflow.run_flow(flow(step), {})
    assert run.status == "success", run.result
    assert run.result == {
        "next": 42,
        "label": "the default",
        "doc": {"a": [1, "two"], "b": {"c": None}},
        "day": "2024-02-29",
        "tags": ["x", "y"],
        "price": "19.0",
        "percent": "50%",
        "ts": "2024-01-02 03:04:05",
        "tstz": "2024-01-02 01:04:05 UTC",
        "bin": "\\x01ff",
        "nothing": None,
    }


PG_STATEMENTS = """\
-- result_collection={strategy}
INSERT INTO people (name, age) VALUES ('ada', 36), ('alan', 41);
UPDATE people SET age = age + 1;
SELECT name, age FROM people ORDER BY name;
SELECT count(*) AS n FROM people
"""


def test_postgresql_multi_statement_results(pg: dict[str, Any]) -> None:
    database = f"$res:{pg['path']}"
    steps = [
        sql("last", "postgresql", "SELECT 1 AS one; SELECT 2 AS two", database),
        sql("nothing", "postgresql", "CREATE TABLE t (x int); INSERT INTO t VALUES (1)", database),
        sql("all", "postgresql", PG_STATEMENTS.format(strategy="all_statements_all_rows"), database),
        sql(
            "legacy", "postgresql", PG_STATEMENTS.format(strategy="legacy").replace("INSERT", "-- "), database
        ),
        sql(
            "scalar", "postgresql", "-- result_collection=last_statement_first_row_scalar\nSELECT 7", database
        ),
        py(
            "collect",
            "return [a, b, c, d, e]",
            a="results.last",
            b="results.nothing",
            c="results.all",
            d="results.legacy",
            e="results.scalar",
        ),
    ]
    run = airflow_openflow.run_flow(flow(*steps), {})
    assert run.status == "success", run.result
    last, nothing, every, legacy, scalar = run.result
    assert last == [{"two": 2}]  # Windmill's default: the last statement's rows
    assert nothing == []
    people = [{"name": "ada", "age": 37}, {"name": "alan", "age": 42}]
    assert every == [[], [], people, [{"n": 2}]]  # one list per statement, [] without rows
    assert legacy == [[], [{"name": "ada", "age": 38}, {"name": "alan", "age": 43}], [{"n": 2}]]
    assert scalar == 7


def test_postgresql_error_fails_the_step_with_the_database_message(pg: dict[str, Any]) -> None:
    bad = sql("bad", "postgresql", "SELECT * FROM no_such_table", f"$res:{pg['path']}")
    run = airflow_openflow.run_flow(flow(bad, py("after", "return 'not reached'")), {})
    assert run.status == "failure"
    error = run.result["error"]
    assert error["name"] == "ExecutionErr" and error["step_id"] == "bad"
    assert 'relation "no_such_table" does not exist' in error["message"]
    assert run.task_states["after"] == "upstream_failed"


def test_postgresql_database_as_object_annotation_missing_and_timeout(pg: dict[str, Any]) -> None:
    resource = {**PG, "dbname": pg["name"], "sslmode": "disable"}
    annotated = f"-- database {pg['path']}\nSELECT current_database() AS db"
    steps = [
        sql("object", "postgresql", "SELECT current_database() AS db", resource),
        sql("annotation", "postgresql", annotated, None),
        sql("missing", "postgresql", "SELECT 1", "$res:f/sqltest/no_such_connection"),
        sql("slow", "postgresql", "SELECT pg_sleep(30)", f"$res:{pg['path']}"),
    ]
    steps[2]["continue_on_error"] = steps[3]["continue_on_error"] = True
    steps[3]["timeout"] = {"type": "static", "value": 1}  # the server's statement_timeout
    run = airflow_openflow.run_flow(
        flow(
            *steps,
            py(
                "out",
                "return [a, b, c, d]",
                a="results.object",
                b="results.annotation",
                c="results.missing",
                d="results.slow",
            ),
        ),
        {},
    )
    assert run.status == "success", run.result
    by_object, by_annotation, missing, slow = run.result
    assert by_object == by_annotation == [{"db": pg["name"]}]
    assert missing["error"]["name"] == "ResourceNotFound"
    assert "f__sqltest__no_such_connection" in missing["error"]["message"]
    assert slow["error"]["name"] == "ExecutionErr" and "statement timeout" in slow["error"]["message"]


def test_a_flow_mixing_python_bash_and_postgresql_steps(pg: dict[str, Any]) -> None:
    database = f"$res:{pg['path']}"
    insert = """\
-- $1 people
INSERT INTO people (name, age)
SELECT p->>'name', (p->>'age')::int FROM jsonb_array_elements($1::jsonb) AS p;
SELECT name, age FROM people WHERE age >= 18 ORDER BY age
"""
    bash = {
        "id": "announce",
        "value": {
            "type": "rawscript",
            "language": "bash",
            "content": 'count="$1"\necho "adults: $count"\n',
            "input_transforms": {"count": {"type": "javascript", "expr": "results.store.length"}},
        },
    }
    steps = [
        py("prepare", "return [{'name': n, 'age': a} for n, a in rows]", rows="flow_input.rows"),
        sql("store", "postgresql", insert, database, people="results.prepare"),
        bash,
        sql("oldest", "postgresql", "SELECT max(age) AS age FROM people", database),
        py(
            "summary",
            "return {'adults': [r['name'] for r in rows], 'said': said, 'oldest': oldest[0]['age']}",
            rows="results.store",
            said="results.announce",
            oldest="results.oldest",
        ),
    ]
    run = airflow_openflow.run_flow(flow(*steps), {"rows": [["kid", 9], ["ada", 36], ["grace", 85]]})
    assert run.status == "success", run.result
    assert run.result == {"adults": ["ada", "grace"], "said": "adults: 2", "oldest": 85}


# -- MariaDB (mysql) -----------------------------------------------------------------------------

MY_STORE = """\
-- ? name (text)
-- ? age (int) = 33
INSERT INTO people (name, age) VALUES (?, ?);
SELECT name, age FROM people WHERE name = ?
"""

MY_FIND = """\
-- :name (text)
SELECT count(*) AS n, :name AS asked FROM people WHERE name = :name
"""


def test_mysql_hostile_values_positional_and_named(mariadb: dict[str, Any]) -> None:
    database = f"$res:{mariadb['path']}"
    steps = [
        sql(f"s{i}", "mysql", MY_STORE, database, name=f"flow_input.names[{i}]") for i in range(len(HOSTILE))
    ]
    steps.append(sql("find", "mysql", MY_FIND, database, name="flow_input.names[0]"))
    steps.append(py("out", "return [stored, found]", stored="results.s1", found="results.find"))
    run = airflow_openflow.run_flow(flow(*steps), {"names": HOSTILE})
    assert run.status == "success", run.result
    # each statement's ``?`` bind from the first declared argument (the SELECT finds the name)
    assert run.result == [[{"name": HOSTILE[1], "age": 33}], [{"n": 1, "asked": HOSTILE[0]}]]
    assert _count(mariadb["connect"]) == len(HOSTILE)
    conn = mariadb["connect"]()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT name, age FROM people ORDER BY id")
        assert cursor.fetchall() == tuple((name, 33) for name in HOSTILE)
    finally:
        conn.close()


MY_TYPES = """\
-- ? n (int)
-- ? label (varchar) = 'the default'
-- ? flag (bool)
-- ? day (date)
-- result_collection=last_statement_first_row
SELECT ? + 1 AS next, ? AS label, ? AS flag, DATE_ADD(?, INTERVAL 1 DAY) AS day,
       CAST(9.50 AS DECIMAL(5, 2)) AS price, TIMESTAMP('2024-01-02 03:04:05') AS ts,
       CAST('10:30:00' AS TIME) AS tm, '50%' AS percent, NULL AS nothing
"""


def test_mysql_typed_arguments_defaults_multi_statement_and_errors(mariadb: dict[str, Any]) -> None:
    resource = {**MARIADB, "database": mariadb["name"]}
    steps = [
        sql("typed", "mysql", MY_TYPES, resource, n="41", flag="true", day="'2024-02-28'"),
        sql(
            "all",
            "mysql",
            "-- result_collection=all_statements_all_rows\n"
            "INSERT INTO people (name) VALUES ('a'); SELECT name FROM people; SELECT 2 AS two",
            f"$res:{mariadb['path']}",
        ),
        sql("bad", "mysql", "SELECT * FROM no_such_table", f"$res:{mariadb['path']}"),
        sql(  # the provider's other driver, chosen by the Connection's ``client`` extra
            "connector",
            "mysql",
            "-- ? p (text)\nSELECT '50%' AS literal, ? AS p",
            {**resource, "client": "mysql-connector-python"},
            p="flow_input.hostile",
        ),
    ]
    steps[2]["continue_on_error"] = True
    out = py(
        "out",
        "return [a, b, c, d]",
        a="results.typed",
        b="results.all",
        c="results.bad",
        d="results.connector",
    )
    run = airflow_openflow.run_flow(flow(*steps, out), {"hostile": HOSTILE[-1]})
    assert run.status == "success", run.result
    typed, every, bad, connector = run.result
    assert connector == [{"literal": "50%", "p": HOSTILE[-1]}]
    assert typed == {
        "next": 42,
        "label": "the default",
        "flag": 1,
        "day": "2024-02-29",
        "price": "9.50",
        "ts": "2024-01-02 03:04:05",
        "tm": "10:30:00",
        "percent": "50%",
        "nothing": None,
    }
    assert every == [[], [{"name": "a"}], [{"two": 2}]]
    assert bad["error"]["name"] == "ExecutionErr"
    assert "no_such_table" in bad["error"]["message"] and "doesn't exist" in bad["error"]["message"]


def test_a_sql_script_by_path_in_a_parallel_loop(pg: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "f" / "db").mkdir(parents=True)
    (tmp_path / "f" / "db" / "add_person.pg.sql").write_text(
        "-- $1 name\n-- $2 age\nINSERT INTO people (name, age) VALUES ($1, $2::int) RETURNING id > 0 AS ok\n"
    )
    folder = tmp_path / "f" / "app" / "people.flow"
    folder.mkdir(parents=True)
    (folder / "flow.yaml").write_text(
        f"""\
summary: a SQL script by path in a loop
value:
  modules:
    - id: each
      value:
        type: forloopflow
        parallel: true
        skip_failures: false
        iterator: {{type: javascript, expr: flow_input.people}}
        modules:
          - id: add
            value:
              type: script
              path: f/db/add_person
              input_transforms:
                database: {{type: static, value: "$res:{pg["path"]}"}}
                name: {{type: javascript, expr: flow_input.iter.value.name}}
                age: {{type: javascript, expr: flow_input.iter.value.age}}
    - id: total
      value:
        type: rawscript
        language: postgresql
        content: "-- result_collection=last_statement_first_row_scalar\\nSELECT sum(age) FROM people"
        input_transforms:
          database: {{type: static, value: "$res:{pg["path"]}"}}
"""
    )
    people = [{"name": HOSTILE[0], "age": 1}, {"name": "b", "age": 2}, {"name": "c", "age": 3}]
    run = airflow_openflow.run_flow(folder, {"people": people})
    assert run.status == "success", run.result
    assert run.result == 6
    assert _count(pg["connect"]) == 3
