"""Windmill's SQL script syntax, read in plain Python: argument declarations, annotations, statement
splitting and the rewrite of Windmill's placeholders into the DB-API driver's bound parameters.

Values never enter the SQL text: every placeholder becomes a driver placeholder (``%(name)s`` /
``%s``) and the value travels in the parameters, which the driver binds. The scanner knows the
dialect's strings, quoted identifiers and comments, so a ``$1``, ``?``, ``:name`` or ``;`` inside
them is left alone.

The declarations, as Windmill reads them (docs/languages.md, SQL):

- PostgreSQL: placeholders ``$1``, ``$2::int``... in the statements; ``-- $1 name`` names an argument,
  ``-- $2 name = default`` gives a default. An undeclared ``$3`` is the argument named ``$3``.
- MySQL: ``-- ? name (type)`` declares the next ``?`` placeholder, in order (in every statement
  the first ``?`` is the first declared argument); ``-- :name (type)`` declares a named argument
  used as ``:name`` (named declarations win, as in Windmill).
- Annotations: ``-- database f/folder/resource`` (the database resource), and
  ``-- result_collection=<strategy>`` (what the step returns, see ``sql_values.collect``).

Nothing here imports Airflow or a database driver.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

Dialect = Literal["postgresql", "mysql"]

__all__ = [
    "RESULT_COLLECTIONS",
    "SqlArg",
    "SqlStatement",
    "declared_args",
    "prepare_statements",
    "script_annotations",
    "split_statements",
]


@dataclass(frozen=True, slots=True)
class SqlArg:
    """One declared argument of a SQL script."""

    name: str
    #: The declared type, lower case (``text`` when none is given).
    type: str
    has_default: bool = False
    default: Any = None
    #: PostgreSQL: the placeholder number (``$1`` -> 1); None for MySQL.
    index: int | None = None


@dataclass(frozen=True, slots=True)
class SqlStatement:
    """One statement ready for ``cursor.execute(sql, params)``; ``params`` is None when the statement
    has no placeholder (the SQL text is then sent as written)."""

    sql: str
    params: dict[str, Any] | list[Any] | None


# -- scanning ------------------------------------------------------------------------------------

_Kind = Literal["code", "string", "ident", "comment"]
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$")


def _segments(sql: str, dialect: Dialect) -> Iterator[tuple[_Kind, str]]:
    """The text cut into code, string literals, quoted identifiers and comments (their quotes
    included), in order; joining them gives ``sql`` back."""
    i, n, start = 0, len(sql), 0
    while i < n:
        c = sql[i]
        end: int | None = None
        kind: _Kind = "code"
        dash_comment = c == "-" and sql.startswith("--", i)
        if dash_comment and dialect == "mysql":
            dash_comment = _mysql_dash_comment(sql, i)
        if dash_comment or (c == "#" and dialect == "mysql"):
            end, kind = _line_end(sql, i), "comment"
        elif c == "/" and sql.startswith("/*", i):
            end, kind = _block_comment_end(sql, i, nested=dialect == "postgresql"), "comment"
        elif c == "'":
            backslash = dialect == "mysql" or (i > 0 and sql[i - 1] in "eE" and not _word_before(sql, i - 1))
            end, kind = _quoted_end(sql, i, "'", backslash=backslash), "string"
        elif c == '"':
            mysql = dialect == "mysql"
            end, kind = _quoted_end(sql, i, '"', backslash=mysql), "string" if mysql else "ident"
        elif c == "`" and dialect == "mysql":
            end, kind = _quoted_end(sql, i, "`", backslash=False), "ident"
        elif c == "$" and dialect == "postgresql" and not _word_before(sql, i):
            tag = _DOLLAR_TAG.match(sql, i)
            if tag is not None:
                close = sql.find(tag.group(0), tag.end())
                end, kind = (n if close < 0 else close + len(tag.group(0))), "string"
        if end is None:
            i += 1
            continue
        if start < i:
            yield "code", sql[start:i]
        yield kind, sql[i:end]
        i = start = end
    if start < n:
        yield "code", sql[start:]


def _mysql_dash_comment(sql: str, i: int) -> bool:
    """MySQL's ``--`` starts a comment only when followed by whitespace or the end of the text."""
    return i + 2 >= len(sql) or sql[i + 2].isspace()


def _word_before(sql: str, i: int) -> bool:
    return i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_$")


def _line_end(sql: str, i: int) -> int:
    end = sql.find("\n", i)
    return len(sql) if end < 0 else end


def _block_comment_end(sql: str, i: int, *, nested: bool) -> int:
    depth, j = 0, i
    while j < len(sql):
        if sql.startswith("/*", j):
            depth = depth + 1 if nested or depth == 0 else depth
            j += 2
        elif sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    return len(sql)


def _quoted_end(sql: str, i: int, quote: str, *, backslash: bool) -> int:
    j = i + 1
    while j < len(sql):
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < len(sql) and sql[j + 1] == quote:  # doubled quote: an escaped quote
                j += 2
                continue
            return j + 1
        j += 1
    return len(sql)


def split_statements(sql: str, dialect: Dialect) -> list[str]:
    """The statements of a script, split on ``;`` outside strings and comments. A piece holding
    only whitespace and comments is no statement (so a trailing comment or ``;`` adds none)."""
    statements: list[str] = []
    current: list[str] = []
    has_code = False
    for kind, text in _segments(sql, dialect):
        if kind != "code":
            current.append(text)
            has_code = has_code or kind != "comment"
            continue
        pieces = text.split(";")
        for k, piece in enumerate(pieces):
            if k > 0:
                if has_code:
                    statements.append("".join(current).strip())
                current, has_code = [], False
            current.append(piece)
            has_code = has_code or bool(piece.strip())
    if has_code:
        statements.append("".join(current).strip())
    return statements


# -- declarations and annotations ----------------------------------------------------------------

_PG_PLACEHOLDER = re.compile(r"(?<![\w$])\$(\d+)(?:::(\w+(?:\[\])?))?")
_PG_DECLARATION = re.compile(r"(?m)^-- \$(\d+) (\w+)(?: ?= ?(.+?))? *\r?$")
_MYSQL_POSITIONAL = re.compile(r"(?m)^-- \? (\w+) \((\w+)\)(?: ?= ?(.+?))? *\r?$")
_MYSQL_NAMED = re.compile(r"(?m)^-- :([a-z_][a-z0-9_]*) \((\w+)\)(?: ?= ?(.+?))? *\r?$")
_MYSQL_NAMED_PLACEHOLDER = re.compile(r"(?<![\w:]):([a-z_][a-z0-9_]*)")
_DATABASE = re.compile(r"(?m)^-- database (\S+) *\r?$")
_RESULT_COLLECTION = re.compile(r"(?m)^--\s*result_collection\s*=\s*(\w+)\s*\r?$")
_RETURN_LAST_RESULT = re.compile(r"(?m)^--\s*return_last_result\s*\r?$")

#: Windmill's result collection strategies; the first is its default.
RESULT_COLLECTIONS: Final = (
    "last_statement_all_rows",
    "last_statement_first_row",
    "last_statement_all_rows_scalar",
    "last_statement_first_row_scalar",
    "all_statements_all_rows",
    "all_statements_first_row",
    "all_statements_all_rows_scalar",
    "all_statements_first_row_scalar",
    "legacy",
)

_INT_TYPES = frozenset(
    [
        "int",
        "integer",
        "int2",
        "int4",
        "int8",
        "bigint",
        "smallint",
        "serial",
        "serial2",
        "serial4",
        "serial8",
        "smallserial",
        "bigserial",
        "oid",
        "uint",
        "tinyint",
        "mediumint",
    ]
)
_FLOAT_TYPES = frozenset(
    ["real", "float", "float4", "float8", "double", "numeric", "decimal", "dec", "fixed"]
)
_BOOL_TYPES = frozenset(["bool", "boolean", "bit"])


def _code_only(sql: str, dialect: Dialect) -> str:
    """``sql`` with strings, identifiers and comments blanked (same length): for placeholder search."""
    return "".join(text if kind == "code" else " " * len(text) for kind, text in _segments(sql, dialect))


def _default(type_: str, text: str | None) -> tuple[bool, Any]:
    """A declared default, read as Windmill reads it: ``null`` is no value; numbers and booleans by
    the declared type; a string type strips one pair of single quotes; anything else is the text."""
    if text is None:
        return False, None
    text = text.strip()
    if text.lower() == "null":
        return True, None
    base = type_.removesuffix("[]")
    try:
        if base in _INT_TYPES:
            return True, int(text)
        if base in _FLOAT_TYPES:
            return True, float(text)
    except ValueError:
        return True, text
    if base in _BOOL_TYPES and text.lower() in ("true", "false"):
        return True, text.lower() == "true"
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return True, text[1:-1]
    return True, text


def declared_args(sql: str, dialect: Dialect) -> list[SqlArg]:
    """The script's arguments in declaration order (PostgreSQL: by placeholder number)."""
    if dialect == "postgresql":
        return _pg_args(sql)
    named = [_mysql_arg(m) for m in _MYSQL_NAMED.finditer(sql)]
    return named or [_mysql_arg(m) for m in _MYSQL_POSITIONAL.finditer(sql)]


def _mysql_arg(match: re.Match[str]) -> SqlArg:
    type_ = match.group(2).lower()
    has_default, default = _default(type_, match.group(3))
    return SqlArg(match.group(1), type_, has_default, default)


def _pg_args(sql: str) -> list[SqlArg]:
    types: dict[int, str] = {}
    for match in _PG_PLACEHOLDER.finditer(_code_only(sql, "postgresql")):
        index = int(match.group(1))
        if match.group(2) or index not in types:
            types[index] = (match.group(2) or "text").lower()
    declared = {int(m.group(1)): m for m in _PG_DECLARATION.finditer(sql)}
    args = []
    for index in sorted(types):
        declaration = declared.get(index)
        if declaration is None:
            args.append(SqlArg(f"${index}", types[index], index=index))
            continue
        has_default, default = _default(types[index], declaration.group(3))
        args.append(SqlArg(declaration.group(2), types[index], has_default, default, index))
    return args


def script_annotations(sql: str) -> tuple[str | None, str]:
    """``(database resource path or None, result collection strategy)`` from the script's
    ``-- database <path>`` and ``-- result_collection=<strategy>`` lines."""
    database = _DATABASE.search(sql)
    collection = _RESULT_COLLECTION.search(sql)
    strategy = RESULT_COLLECTIONS[0]
    if collection is not None and collection.group(1) in RESULT_COLLECTIONS:
        strategy = collection.group(1)
    elif collection is None and _RETURN_LAST_RESULT.search(sql):
        strategy = "last_statement_all_rows"
    return (database.group(1) if database else None), strategy


# -- statements with bound parameters ------------------------------------------------------------


def prepare_statements(
    sql: str,
    dialect: Dialect,
    values: Mapping[str, Any],
    *,
    adapt: Any = None,
    escape_percent: bool = True,
) -> list[SqlStatement]:
    """The script's statements with Windmill's placeholders rewritten to the driver's (pyformat)
    placeholders and the argument values as the bound parameters.

    ``values``: the step's arguments by name; a declared argument that is missing takes its declared
    default, else NULL. ``adapt(value, declared_type)`` turns a JSON value into what the driver
    binds (e.g. a JSON object for a ``jsonb`` parameter). ``escape_percent``: the driver reads
    ``%%`` as ``%`` once parameters are given (psycopg, mysqlclient; mysql-connector-python does
    not)."""
    args = declared_args(sql, dialect)
    resolved = {arg.name: _value(arg, values) for arg in args}
    if adapt is not None:
        resolved = {arg.name: adapt(resolved[arg.name], arg.type) for arg in args}
    statements = split_statements(sql, dialect)
    if dialect == "postgresql":
        by_index = {arg.index: arg for arg in args if arg.index is not None}
        return [_pg_statement(text, by_index, resolved, escape_percent) for text in statements]
    if args and _MYSQL_NAMED.search(sql):
        return [_mysql_named_statement(text, resolved, escape_percent) for text in statements]
    # As Windmill binds them: each statement's ``?`` take the declared arguments from the first.
    positional = [resolved[arg.name] for arg in args]
    return [_mysql_positional_statement(text, positional, escape_percent) for text in statements]


def _value(arg: SqlArg, values: Mapping[str, Any]) -> Any:
    if arg.name in values:
        return values[arg.name]
    return arg.default if arg.has_default else None


def _rewrite(
    text: str, dialect: Dialect, placeholder: re.Pattern[str], replace: Any, escape_percent: bool
) -> tuple[str, bool]:
    """``text`` with the ``placeholder`` matches in code replaced by ``replace(match)`` (None keeps
    the match), and, when any was replaced and ``escape_percent``, every other ``%`` doubled:
    pyformat drivers read ``%`` everywhere in the text once parameters are given."""
    pieces: list[tuple[str, bool]] = []  # (text, is an inserted driver placeholder)
    found = False
    for kind, segment in _segments(text, dialect):
        if kind != "code":
            pieces.append((segment, False))
            continue
        last = 0
        for match in placeholder.finditer(segment):
            out: str | None = replace(match)
            if out is None:
                continue
            found = True
            pieces.append((segment[last : match.start()], False))
            pieces.append((out, True))
            last = match.end()
        pieces.append((segment[last:], False))
    if not found or not escape_percent:
        return "".join(piece for piece, _ in pieces), found
    return "".join(p if inserted else p.replace("%", "%%") for p, inserted in pieces), True


def _pg_statement(
    text: str, by_index: Mapping[int, SqlArg], values: Mapping[str, Any], escape_percent: bool
) -> SqlStatement:
    params: dict[str, Any] = {}

    def replace(match: re.Match[str]) -> str | None:
        arg = by_index.get(int(match.group(1)))
        if arg is None:
            return None
        key = f"p{arg.index}"
        params[key] = values[arg.name]
        cast = f"::{match.group(2)}" if match.group(2) else ""
        return f"%({key})s{cast}"

    sql, found = _rewrite(text, "postgresql", _PG_PLACEHOLDER, replace, escape_percent)
    return SqlStatement(sql, params if found else None)


def _mysql_named_statement(text: str, values: Mapping[str, Any], escape_percent: bool) -> SqlStatement:
    params: dict[str, Any] = {}

    def replace(match: re.Match[str]) -> str | None:
        name = match.group(1)
        if name not in values:
            return None
        params[name] = values[name]
        return f"%({name})s"

    sql, found = _rewrite(text, "mysql", _MYSQL_NAMED_PLACEHOLDER, replace, escape_percent)
    return SqlStatement(sql, params if found else None)


_QUESTION = re.compile(r"\?")


def _mysql_positional_statement(text: str, values: Sequence[Any], escape_percent: bool) -> SqlStatement:
    params: list[Any] = []

    def replace(_match: re.Match[str]) -> str | None:
        if len(params) >= len(values):
            return None  # more ``?`` than declared arguments: the database reports the error
        params.append(values[len(params)])
        return "%s"

    sql, found = _rewrite(text, "mysql", _QUESTION, replace, escape_percent)
    return SqlStatement(sql, params if found else None)
