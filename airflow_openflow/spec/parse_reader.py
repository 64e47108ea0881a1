"""The walk's tools: the context that collects problems, and typed readers of one raw mapping.

``ParseContext`` carries the file name, the ``!inline`` resolver, the errors and warnings found so
far and the step ids seen. ``FieldReader`` reads one mapping of the document at a JSON path: each
getter reports a value of the wrong type (and returns None so the caller can use its default), and
``extra`` reports the keys nobody read. Knows nothing of the OpenFlow model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.inline import InlineFiles
from airflow_openflow.spec.locate import join_path
from airflow_openflow.spec.suggest import did_you_mean

# Very old expressions start with ``import { ... } from 'windmill@1-1'`` on their own line (spec 3.8).
# Also accepted: any one-line import clause (``import * as wmill from "windmill"``), a header that
# is the whole expression, and a header before blank lines.
_LEGACY_IMPORT = re.compile(
    r"""\A\s*import(?:\s*\{[^}]*\}\s*|\s[^\n]*?\b)from\s*['"]windmill[^'"\n]*['"]\s*;?[ \t]*(?:\r?\n|\Z)"""
)


def strip_legacy_import(expr: str) -> str:
    """The expression without its legacy ``import ... from 'windmill...'`` header line (spec 3.8):
    the loader strips it from every expression it reads, the evaluator from any it is given."""
    match = _LEGACY_IMPORT.match(expr)
    return expr[match.end() :] if match else expr


def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


# The hint of a "must be <expected>" problem, by the expected type's wording.
TYPE_HINTS = {
    "a boolean": "write true or false",
    "a number": "write a number",
    "an integer": "write a whole number",
    "a string": "write a string (quote it in YAML)",
    "a list": "write a list",
    "a mapping": "write a mapping of fields",
}


@dataclass
class ParseContext:
    file: str | None
    inline: InlineFiles | None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)  # step id -> json_path of its first module

    def error(self, path: str, message: str, hint: str | None = None) -> None:
        self.errors.append(Problem(message, file=self.file, json_path=path, hint=hint))

    def warn(self, path: str, message: str, hint: str | None = None) -> None:
        self.warnings.append(Problem(message, file=self.file, json_path=path, hint=hint, severity="warning"))


class FieldReader:
    """A raw mapping being read: typed getters that report problems, and unknown-key detection."""

    __slots__ = ("ctx", "data", "path", "seen")

    def __init__(self, ctx: ParseContext, data: dict[Any, Any], path: str) -> None:
        self.ctx = ctx
        self.data = data
        self.path = path
        self.seen: set[Any] = set()

    def at(self, key: str) -> str:
        return join_path(self.path, key)

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key)

    def _typed(
        self, key: str, check: Callable[[Any], bool], expected: str, *, required: bool, hint: str | None
    ) -> Any:
        value = self.raw(key)
        if value is None:  # null and absent are the same for optional fields (Windmill writes nulls)
            if required:
                self.ctx.error(self.at(key), f"missing required field '{key}'", hint or f"add '{key}' here")
            return None
        if not check(value):
            self.ctx.error(
                self.at(key), f"'{key}' must be {expected}, got {json_type(value)}", TYPE_HINTS.get(expected)
            )
            return None
        return value

    def string(self, key: str, *, required: bool = False, hint: str | None = None) -> str | None:
        value: str | None = self._typed(
            key, lambda v: isinstance(v, str), "a string", required=required, hint=hint
        )
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self._typed(key, lambda v: isinstance(v, bool), "a boolean", required=False, hint=None)
        return default if value is None else bool(value)

    def number(self, key: str) -> float | None:
        value = self._typed(key, is_number, "a number", required=False, hint=None)
        return None if value is None else float(value) if isinstance(value, float) else int(value)

    def integer(self, key: str) -> int | None:
        value = self._typed(
            key, lambda v: is_number(v) and float(v).is_integer(), "an integer", required=False, hint=None
        )
        return None if value is None else int(value)

    def mapping(self, key: str, *, required: bool = False, hint: str | None = None) -> dict[Any, Any] | None:
        value: dict[Any, Any] | None = self._typed(
            key, lambda v: isinstance(v, dict), "a mapping", required=required, hint=hint
        )
        return value

    def array(self, key: str, *, required: bool = False, hint: str | None = None) -> list[Any] | None:
        value: list[Any] | None = self._typed(
            key, lambda v: isinstance(v, list), "a list", required=required, hint=hint
        )
        return value

    def expr(self, key: str, *, required: bool = False, hint: str | None = None) -> str | None:
        value = self.string(key, required=required, hint=hint)
        return None if value is None else strip_legacy_import(value)

    def extra(self, *, silent: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Keys nobody read: kept, and reported as warnings unless listed in ``silent``."""
        out: dict[str, Any] = {}
        for key, value in self.data.items():
            if key in self.seen:
                continue
            out[str(key)] = value
            if key not in silent:
                guess = did_you_mean(str(key), [k for k in (*self.seen, *silent) if k not in self.data])
                self.ctx.warn(
                    join_path(self.path, str(key)),
                    f"unknown field '{key}' is ignored{': ' + guess if guess else ''}",
                    "remove it or check its spelling",
                )
        return out


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
