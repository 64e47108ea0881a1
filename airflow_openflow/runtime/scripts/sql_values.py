"""Values across the SQL boundary: a step's JSON arguments into bound parameters, database cells into
the JSON of the step result and the rows of the statements into the step result (``collect``), as
Windmill's SQL executors do (docs/languages.md, SQL).

Imports no database driver: the driver's JSON wrapper is handed in.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_openflow.runtime.scripts.sql_text import RESULT_COLLECTIONS, Dialect

_TEXT_TYPES = frozenset({"text", "varchar", "character varying", "char", "character", "string", "nvarchar"})
_JSON_TYPES = frozenset({"json", "jsonb"})


def parameter(value: Any, declared_type: str, dialect: Dialect, *, json_wrapper: Callable[[Any], Any]) -> Any:
    """The bound value of one argument.

    - an object, or a list for a parameter that is no array (``int[]``), is JSON: text for a text
      parameter, else the driver's JSON value (``json_wrapper``; MySQL: its JSON text);
    - a number for a text parameter is its text (Windmill binds it as a string);
    - a boolean for MySQL is 1/0; everything else goes to the driver as it is, and the database
      converts it to the placeholder's type (``$1::date`` reads an ISO date string).
    """
    if isinstance(value, Mapping) or (isinstance(value, list) and not declared_type.endswith("[]")):
        if declared_type in _TEXT_TYPES or dialect == "mysql":
            return json.dumps(value)
        return json_wrapper(value)
    if isinstance(value, list):
        if declared_type.removesuffix("[]") in _JSON_TYPES:
            return [json_wrapper(item) for item in value]
        return value
    if isinstance(value, bool):
        return int(value) if dialect == "mysql" else value
    if isinstance(value, int | float) and declared_type in _TEXT_TYPES:
        return json.dumps(value)
    return value


def row_object(names: list[str], row: Any, dialect: Dialect) -> dict[str, Any]:
    """One row as ``{column: value}`` (a repeated column name keeps its last value, as in Windmill).
    ``row`` is a sequence, or a mapping when the Connection's ``cursor`` extra asks for dict rows."""
    cells = list(row.values()) if isinstance(row, Mapping) else list(row)
    return {name: json_cell(cell, dialect) for name, cell in zip(names, cells, strict=False)}


def json_cell(value: Any, dialect: Dialect) -> Any:
    """A database value as JSON. Datetimes are text in the database's own notation (PostgreSQL
    ``timestamptz`` in UTC with `` UTC``), decimals are text (no precision lost), binary data is
    ``\\x<hex>`` for PostgreSQL and base64 for MySQL; JSON columns stay JSON."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            utc = value.astimezone(datetime.UTC).replace(tzinfo=None)
            return f"{_naive_datetime(utc)} UTC"
        return _naive_datetime(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.time):
        return _time(value)
    if isinstance(value, datetime.timedelta):
        return _duration(value) if dialect == "mysql" else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return "\\x" + data.hex() if dialect == "postgresql" else base64.b64encode(data).decode("ascii")
    if isinstance(value, list | tuple):
        return [json_cell(item, dialect) for item in value]
    if isinstance(value, dict):
        return {str(key): json_cell(item, dialect) for key, item in value.items()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)  # inet, ranges, intervals... as their text


def _fraction(microsecond: int) -> str:
    """Fractional seconds as chrono prints them: none, or 3 or 6 digits."""
    if microsecond == 0:
        return ""
    if microsecond % 1000 == 0:
        return f".{microsecond // 1000:03d}"
    return f".{microsecond:06d}"


def _naive_datetime(value: datetime.datetime) -> str:
    return f"{value.date().isoformat()} {_time(value.time())}"


def _time(value: datetime.time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}{_fraction(value.microsecond)}"


def _duration(value: datetime.timedelta) -> str:
    """A MySQL ``TIME`` (the driver gives a duration): ``[-]HH:MM:SS``."""
    total = abs(value)
    hours, rest = divmod(int(total.total_seconds()), 3600)
    minutes, seconds = divmod(rest, 60)
    sign = "-" if value < datetime.timedelta(0) else ""
    return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}{_fraction(total.microseconds)}"


# -- results -------------------------------------------------------------------------------------


def collect(strategy: str, results: Sequence[Sequence[dict[str, Any]]]) -> Any:
    """The step result from the rows of every statement (statements without rows give ``[]``),
    as Windmill's result collection ``strategy`` shapes it:

    - ``last_statement_*`` (the default ``last_statement_all_rows``): the last statement only;
      ``all_statements_*``: one entry per statement; ``legacy``: the rows for a single statement,
      one list per statement for several.
    - ``*_first_row``: a row (or null) instead of a list of rows.
    - ``*_scalar``: the first column's value instead of the row object.
    """
    if strategy not in RESULT_COLLECTIONS:
        strategy = RESULT_COLLECTIONS[0]
    last_only = strategy.startswith("last_statement") or (strategy == "legacy" and len(results) == 1)
    first_row = "_first_row" in strategy
    scalar = strategy.endswith("_scalar")
    selected: list[list[Any]] = [list(rows) for rows in (results[-1:] if last_only else results)]
    if first_row:
        selected = [rows[:1] for rows in selected]
    if scalar:
        selected = [[_first_value(row) for row in rows] for rows in selected]
    if last_only:
        rows = selected[-1] if selected else []
        return (rows[0] if rows else None) if first_row else rows
    if first_row:
        return [rows[0] if rows else None for rows in selected]
    return selected


def _first_value(row: Any) -> Any:
    if not isinstance(row, dict) or not row:
        raise ValueError("a scalar result needs rows with at least one column")
    return next(iter(row.values()))
