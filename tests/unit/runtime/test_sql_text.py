"""Windmill's SQL syntax read without a database: declarations, defaults, statement splitting, the
rewrite to bound parameters (a value never enters the SQL text), result collection, cell values."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import pytest

from airflow_openflow.runtime.scripts.sql_text import (
    SqlArg,
    SqlStatement,
    declared_args,
    prepare_statements,
    script_annotations,
    split_statements,
)
from airflow_openflow.runtime.scripts.sql_values import collect, json_cell, parameter, row_object

HOSTILE = "x'); DROP TABLE people; -- \" ` $1 ? :name %s %(p1)s"


def test_postgresql_declarations_types_and_defaults() -> None:
    sql = (
        "-- $1 name\n"
        "-- $2 age = 42\n"
        "-- $3 label = 'hello'\n"
        "-- $4 flag = true\n"
        "-- $5 ratio = null\n"
        "SELECT $1::TEXT, $2::int, $3, $4::boolean, $5::float8, $6::int[]\n"
    )
    assert declared_args(sql, "postgresql") == [
        SqlArg("name", "text", index=1),
        SqlArg("age", "int", True, 42, 2),
        SqlArg("label", "text", True, "hello", 3),
        SqlArg("flag", "boolean", True, True, 4),
        SqlArg("ratio", "float8", True, None, 5),
        SqlArg("$6", "int[]", index=6),  # undeclared: Windmill names it by its placeholder
    ]


def test_postgresql_placeholders_become_bound_parameters() -> None:
    sql = "-- $1 name\n-- $2 n = 3\nSELECT $1::TEXT AS a, $2::int + 1 AS b, $1 AS again"
    (statement,) = prepare_statements(sql, "postgresql", {"name": HOSTILE})
    assert statement.params == {"p1": HOSTILE, "p2": 3}
    assert "SELECT %(p1)s::TEXT AS a, %(p2)s::int + 1 AS b, %(p1)s AS again" in statement.sql
    assert "DROP" not in statement.sql


@pytest.mark.parametrize(
    "literal",
    [
        "'$1 ; ?'",
        "E'it\\'s $1;'",
        "$$ $1 ; $$",
        "$tag$ a $1 ; $tag$",
        '"col$1;"',
        "/* $1 ; /* nested ; */ $1 */ 1",
    ],
)
def test_postgresql_placeholders_in_strings_identifiers_and_comments_stay(literal: str) -> None:
    sql = f"-- $1 x\nSELECT {literal}, $1::int"
    (statement,) = prepare_statements(sql, "postgresql", {"x": 5})
    assert literal.replace("%", "%%") in statement.sql
    assert statement.sql.endswith(", %(p1)s::int") and statement.params == {"p1": 5}


def test_percent_signs_are_escaped_only_when_parameters_are_bound() -> None:
    (plain,) = prepare_statements("SELECT '50%' LIKE '%'", "postgresql", {})
    assert plain == SqlStatement("SELECT '50%' LIKE '%'", None)
    (bound,) = prepare_statements("-- $1 x\nSELECT '50%', $1 -- 10%", "postgresql", {"x": 1})
    assert bound.sql.endswith("SELECT '50%%', %(p1)s -- 10%%")
    # mysql-connector-python keeps ``%%`` as written: no doubling for it
    (kept,) = prepare_statements("-- ? x (int)\nSELECT '50%', ?", "mysql", {"x": 1}, escape_percent=False)
    assert kept.sql.endswith("SELECT '50%', %s") and kept.params == [1]


def test_statements_split_outside_strings_and_comments() -> None:
    sql = "SELECT 'a;b'; -- c;d\nSELECT \"x;y\" /* ; */;\n\n;  -- trailing comment\n"
    assert split_statements(sql, "postgresql") == ["SELECT 'a;b'", '-- c;d\nSELECT "x;y" /* ; */']
    assert split_statements("SELECT 1", "postgresql") == ["SELECT 1"]
    assert split_statements("-- only a comment\n", "postgresql") == []


def test_mysql_statements_know_backslash_escapes_backticks_and_hash_comments() -> None:
    sql = "SELECT 'it\\'s;', `a;b` # c;d\n; SELECT 2"
    assert split_statements(sql, "mysql") == ["SELECT 'it\\'s;', `a;b` # c;d", "SELECT 2"]
    # MySQL's ``--`` starts a comment only before whitespace
    assert split_statements("SELECT 1--1; SELECT 2", "mysql") == ["SELECT 1--1", "SELECT 2"]


def test_mysql_positional_declarations_bind_in_order_in_each_statement() -> None:
    sql = (
        "-- ? name (varchar)\n-- ? age (int) = 7\n-- ? ok (bool)\n"
        "INSERT INTO t VALUES (?, ?, ?); SELECT '?' AS q, ? AS name; SELECT 1"
    )
    assert declared_args(sql, "mysql") == [
        SqlArg("name", "varchar"),
        SqlArg("age", "int", True, 7),
        SqlArg("ok", "bool"),
    ]
    first, second, third = prepare_statements(sql, "mysql", {"name": HOSTILE, "ok": True})
    assert first.sql.endswith("INSERT INTO t VALUES (%s, %s, %s)") and first.params == [HOSTILE, 7, True]
    # as Windmill binds them: each statement starts again from the first declared argument
    assert second == SqlStatement("SELECT '?' AS q, %s AS name", [HOSTILE])
    assert third == SqlStatement("SELECT 1", None)


def test_mysql_named_declarations_win_and_bind_by_name() -> None:
    sql = "-- :name (text)\n-- :n (int) = 2\n-- ? ignored (int)\nSELECT :name, ':name', :n, :n, :undeclared"
    assert [arg.name for arg in declared_args(sql, "mysql")] == ["name", "n"]
    (statement,) = prepare_statements(sql, "mysql", {"name": HOSTILE})
    assert statement.sql.endswith("SELECT %(name)s, ':name', %(n)s, %(n)s, :undeclared")
    assert statement.params == {"name": HOSTILE, "n": 2}


def test_annotations() -> None:
    assert script_annotations("SELECT 1") == (None, "last_statement_all_rows")
    sql = "-- database f/team/warehouse\n-- result_collection=all_statements_first_row\nSELECT 1"
    assert script_annotations(sql) == ("f/team/warehouse", "all_statements_first_row")
    assert script_annotations("-- result_collection=bogus\nSELECT 1")[1] == "last_statement_all_rows"


ROWS: list[list[dict[str, Any]]] = [[], [{"a": 1, "b": 2}, {"a": 3, "b": 4}]]


@pytest.mark.parametrize(
    ("strategy", "results", "expected"),
    [
        ("last_statement_all_rows", ROWS, [{"a": 1, "b": 2}, {"a": 3, "b": 4}]),
        ("last_statement_first_row", ROWS, {"a": 1, "b": 2}),
        ("last_statement_first_row", [[]], None),
        ("last_statement_all_rows_scalar", ROWS, [1, 3]),
        ("last_statement_first_row_scalar", ROWS, 1),
        ("all_statements_all_rows", ROWS, [[], [{"a": 1, "b": 2}, {"a": 3, "b": 4}]]),
        ("all_statements_first_row", ROWS, [None, {"a": 1, "b": 2}]),
        ("all_statements_all_rows_scalar", ROWS, [[], [1, 3]]),
        ("all_statements_first_row_scalar", ROWS, [None, 1]),
        ("legacy", ROWS, [[], [{"a": 1, "b": 2}, {"a": 3, "b": 4}]]),
        ("legacy", [[{"a": 1}]], [{"a": 1}]),
        ("last_statement_all_rows", [], []),
    ],
)
def test_result_collection(strategy: str, results: list[list[dict[str, Any]]], expected: Any) -> None:
    assert collect(strategy, results) == expected


def test_cells_become_json_as_windmill_returns_them() -> None:
    utc = datetime.UTC
    assert json_cell(datetime.datetime(2024, 1, 2, 3, 4, 5), "postgresql") == "2024-01-02 03:04:05"
    assert json_cell(datetime.datetime(2024, 1, 2, 3, 4, 5, 120000), "mysql") == "2024-01-02 03:04:05.120"
    assert json_cell(datetime.datetime(2024, 1, 2, 3, 4, 5, 7, tzinfo=utc), "postgresql") == (
        "2024-01-02 03:04:05.000007 UTC"
    )
    assert json_cell(datetime.date(2024, 1, 2), "mysql") == "2024-01-02"
    assert json_cell(datetime.time(3, 4, 5), "postgresql") == "03:04:05"
    assert json_cell(datetime.timedelta(hours=-30, minutes=-1), "mysql") == "-30:01:00"
    assert json_cell(decimal.Decimal("12.50"), "postgresql") == "12.50"
    assert json_cell(b"\x01\xff", "postgresql") == "\\x01ff"
    assert json_cell(b"\x01\xff", "mysql") == "Af8="
    assert json_cell(uuid.UUID(int=1), "postgresql") == "00000000-0000-0000-0000-000000000001"
    assert json_cell([decimal.Decimal("1.5"), {"k": None}], "postgresql") == ["1.5", {"k": None}]
    assert json_cell(float("nan"), "postgresql") == "nan"


def test_parameters_follow_the_declared_type() -> None:
    def wrap(value: Any) -> Any:
        return ("json", value)

    assert parameter({"a": 1}, "jsonb", "postgresql", json_wrapper=wrap) == ("json", {"a": 1})
    assert parameter({"a": 1}, "text", "postgresql", json_wrapper=wrap) == '{"a": 1}'
    assert parameter([1, 2], "int[]", "postgresql", json_wrapper=wrap) == [1, 2]
    assert parameter([1, 2], "json", "postgresql", json_wrapper=wrap) == ("json", [1, 2])
    assert parameter(5, "text", "postgresql", json_wrapper=wrap) == "5"
    assert parameter(True, "bool", "mysql", json_wrapper=wrap) == 1
    assert parameter({"a": 1}, "text", "mysql", json_wrapper=wrap) == '{"a": 1}'
    assert parameter("2024-01-02", "date", "postgresql", json_wrapper=wrap) == "2024-01-02"


def test_rows_are_objects_whatever_the_cursor_gives() -> None:
    names = ["a", "b", "a"]
    assert row_object(names, (1, decimal.Decimal("2.5"), 3), "postgresql") == {"a": 3, "b": "2.5"}
    # a Connection's ``cursor`` extra (dictcursor, realdictcursor) makes the driver return mappings
    assert row_object(["a", "b"], {"a": 1, "b": None}, "postgresql") == {"a": 1, "b": None}
