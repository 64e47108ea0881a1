"""The flow's ``schema`` and each approval's ``resume_form.schema``, checked at load time with a real
JSON Schema validator (``jsonschema``), in the dialect the schema declares (``$schema``; draft
2020-12 when it declares none).

What would otherwise surface at run time, or never: a keyword with a wrong value (``type: strnig``,
``minimum: "five"``, a ``pattern`` that is not a regular expression) makes Airflow fail every run
with a ``SchemaError``; a ``$ref`` that points to nothing fails it with a ``referencing`` error; a
``default`` that breaks its own input's schema makes Airflow refuse every run that does not give
that input. Each is a Problem at the JSON path inside the schema (``schema.properties.x.type``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.json_schema import (
    DEFAULT_DIALECT,
    DEFINITION_KEYS,
    first_violation,
    known_dialect,
    metaschema_errors,
    property_schema,
    references,
    validator_class,
)
from airflow_openflow.spec.locate import join_path
from airflow_openflow.spec.model import OpenFlow, all_modules
from airflow_openflow.spec.parse_reader import json_type
from airflow_openflow.spec.suggest import did_you_mean

_TYPE_NAMES = ("string", "number", "integer", "boolean", "object", "array", "null")
_TYPES = "string, number, integer, boolean, object, array or null"
_MAX_SHOWN = 80  # characters of a value quoted in a message


def check_schemas(flow: OpenFlow) -> list[Problem]:
    """Problems of the flow's ``schema`` and of every ``suspend.resume_form.schema``."""
    file = flow.source.file
    problems: list[Problem] = []
    if flow.schema is not None:
        problems += check_schema(flow.schema, "schema", file=file)
    for module in all_modules(flow):
        suspend = module.suspend
        if suspend is None or suspend.resume_form is None:
            continue
        path = join_path(join_path(suspend.json_path, "resume_form"), "schema")
        form = suspend.resume_form.get("schema")
        if form is None:
            continue
        if not isinstance(form, dict):
            problems.append(
                Problem(
                    f"'resume_form.schema' must be a mapping (a JSON schema), got {json_type(form)}",
                    file=file,
                    json_path=path,
                    hint="write schema: {type: object, properties: {...}} or remove resume_form",
                )
            )
            continue
        problems += check_schema(form, path, file=file)
    return problems


def check_schema(schema: Mapping[str, Any], path: str, *, file: str | None = None) -> list[Problem]:
    """Problems of one schema of flow inputs (or of an approval form) found at ``path``."""
    checker = _Checker(schema, path, file)
    checker.shape()
    checker.dialect()
    checker.metaschema()
    checker.refs()
    checker.defaults()
    return checker.problems


class _Checker:
    def __init__(self, schema: Mapping[str, Any], path: str, file: str | None) -> None:
        self.schema = schema
        self.path = path
        self.file = file
        self.problems: list[Problem] = []
        self.reported: set[str] = set()  # json paths with an error, so one cause is told once

    def at(self, *segments: str | int) -> str:
        path = self.path
        for segment in segments:
            path = join_path(path, segment)
        return path

    def error(self, path: str, message: str, hint: str) -> None:
        if any(path == seen or path.startswith((seen + ".", seen + "[")) for seen in self.reported):
            return
        self.reported.add(path)
        self.problems.append(Problem(message, file=self.file, json_path=path, hint=hint))

    def warn(self, path: str, message: str, hint: str) -> None:
        self.problems.append(Problem(message, file=self.file, json_path=path, hint=hint, severity="warning"))

    def broken(self, path: str, *, inside: bool = False) -> bool:
        """Whether an error was reported at ``path`` (``inside``: or anywhere under it)."""
        if not inside:
            return path in self.reported
        return any(seen == path or seen.startswith((path + ".", path + "[")) for seen in self.reported)

    # -- the parts this project reads itself (one Param per property, ``required``) ------------

    def shape(self) -> None:
        properties = self.schema.get("properties")
        if "properties" in self.schema and not isinstance(properties, Mapping):
            self.error(
                self.at("properties"),
                f"'properties' must be a mapping of input name to schema, got {json_type(properties)}",
                "write properties: {<input name>: {type: ...}, ...}",
            )
        elif isinstance(properties, Mapping):
            for name, prop in properties.items():
                if not isinstance(prop, Mapping | bool):
                    self.error(
                        self.at("properties", str(name)),
                        f"the schema of input {name!r} must be a mapping, got {json_type(prop)}",
                        f"write {name}: {{type: {prop if isinstance(prop, str) else 'string'}}}",
                    )
        required = self.schema.get("required")
        if "required" in self.schema and (
            not isinstance(required, list) or not all(isinstance(item, str) for item in required)
        ):
            self.error(
                self.at("required"),
                f"'required' must be a list of input names (strings), got {_shown(required)}",
                "write required: [name, ...] with the names of the inputs that must be given",
            )

    def dialect(self) -> None:
        dialect = self.schema.get("$schema")
        if dialect is None:
            return
        if not isinstance(dialect, str):
            self.error(
                self.at("$schema"),
                f"'$schema' must be the URI of a JSON Schema dialect, got {json_type(dialect)}",
                f"write $schema: {DEFAULT_DIALECT}",
            )
        elif not known_dialect(dialect):
            self.warn(
                self.at("$schema"),
                f"unknown JSON Schema dialect {dialect!r}: the schema is checked as draft 2020-12",
                f"write $schema: {DEFAULT_DIALECT}",
            )

    # -- the schema as JSON Schema ---------------------------------------------------------------

    def metaschema(self) -> None:
        cls = validator_class(self.schema)
        for error in metaschema_errors(self.schema, cls):
            where = list(error.absolute_path)
            message, hint = _metaschema_message(error, where, _DIALECTS.get(cls.__name__, cls.__name__))
            self.error(self.at(*where), message, hint)

    def refs(self) -> None:
        """Each ``$ref`` must point into the schema's own ``$defs`` / ``definitions``: inputs are
        checked one by one (one Param each) against the definitions of the whole schema."""
        for where, ref in references(self.schema):
            if not isinstance(ref, str):
                continue  # the metaschema reported it
            path = self.at(*where)
            target = _local_target(ref)
            if target is None:
                self.error(
                    path,
                    f"unsupported $ref {ref!r}: only references to this schema's own $defs or "
                    "definitions are resolved (e.g. '#/$defs/<name>')",
                    "move the referenced schema under $defs and point $ref at '#/$defs/<name>'",
                )
                continue
            found = _resolve(self.schema, target)
            if found is _MISSING:
                self.error(
                    path,
                    f"$ref {ref!r} points to nothing: the schema has no {'.'.join(target)}",
                    f"add {target[-1]!r} under {target[0]} or fix the reference",
                )

    def defaults(self) -> None:
        """A default must pass its input's schema as Airflow checks it (or Airflow refuses every
        run that does not give the input)."""
        properties = self.schema.get("properties")
        if (
            not isinstance(properties, Mapping)
            or self.broken(self.at("$schema"))
            or self.broken(self.at("properties"))
            or any(self.broken(self.at(key), inside=True) for key in DEFINITION_KEYS)
        ):
            return  # a broken schema cannot judge its defaults
        for name, raw in properties.items():
            if not isinstance(raw, Mapping) or raw.get("default") is None:
                continue  # a null default widens the input to allow null
            if self.broken(self.at("properties", str(name)), inside=True):
                continue
            prop = property_schema(self.schema, raw)
            default = prop.pop("default")
            prop.pop("description", None)
            path = self.at("properties", str(name), "default")
            try:
                problem = _first_violation(prop, default)
            except Exception as exc:  # what Airflow would run into when a run starts
                self.error(path, f"the default of input {name!r} cannot be checked: {exc}", "fix the schema")
                continue
            if problem is None:
                continue
            if isinstance(default, str) and default.startswith(("$res:", "$var:")):
                hint = (
                    "a $res:/$var: default of a flow input is not resolved here: pass the value when "
                    "the run starts, or read it in a step with a static input transform"
                )
                self.error(path, f"the default {_shown(default)} of input {name!r} {problem}", hint)
                continue
            # Windmill never checks a default against its schema (spec 1: the engine does not
            # validate inputs): the flow runs with it. So does the DAG, whose trigger form then
            # leaves this input unchecked (compile/params.py).
            self.warn(
                path,
                f"the default {_shown(default)} of input {name!r} {problem}; the trigger form does not "
                "check this input",
                "change the default so that it matches the input's schema, or fix the schema",
            )


def _first_violation(schema: dict[str, Any], value: Any) -> str | None:
    """How ``value`` breaks ``schema`` (as Airflow's ``Param`` checks it), or None."""
    error = first_violation(schema, value)
    if error is None:
        return None
    inside = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in error.absolute_path)
    where = f" at {inside}" if inside else ""
    return f"does not match its schema{where}: {_clip(error.message)}"


_DIALECTS = {
    "Draft202012Validator": "draft 2020-12",
    "Draft201909Validator": "draft 2019-09",
    "Draft7Validator": "draft-07",
    "Draft6Validator": "draft-06",
    "Draft4Validator": "draft-04",
    "Draft3Validator": "draft-03",
}


def _metaschema_message(error: Any, where: list[str | int], dialect: str) -> tuple[str, str]:
    keyword = str(where[-1]) if where else ""
    value = error.instance
    if keyword == "type" and error.validator in ("anyOf", "enum"):
        guess = did_you_mean(value, _TYPE_NAMES) if isinstance(value, str) else ""
        return (
            f"{_shown(value)} is not a JSON Schema type" + (f": {guess}" if guess else ""),
            f"use {_TYPES}, or a list of them",
        )
    if error.validator == "format" and error.validator_value == "regex":
        try:
            re.compile(value)
            reason = "not a regular expression"
        except re.error as exc:
            reason = f"not a regular expression ({exc})"
        return (
            f"{_shown(value)} is {reason}",
            "fix the pattern; Airflow checks inputs with Python's re module: use the syntax "
            "JavaScript and Python share (no (?<name>...) groups, no \\p{...} classes)",
        )
    name = f"'{keyword}'" if keyword and not keyword.isdigit() else "this part of the schema"
    return (
        f"invalid JSON Schema: {_clip(error.message)}",
        f"fix {name} (JSON Schema {dialect}, https://json-schema.org/specification)",
    )


_MISSING = object()


def _local_target(ref: str) -> list[str] | None:
    """``#/$defs/a/properties/b`` -> ``["$defs", "a", "properties", "b"]``; None for any other ref."""
    from urllib.parse import unquote

    if not ref.startswith("#/"):
        return None
    parts = [unquote(p).replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]
    if len(parts) < 2 or parts[0] not in DEFINITION_KEYS:
        return None
    return parts


def _resolve(schema: Any, parts: list[str]) -> Any:
    node = schema
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return _clip(text)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN * 2 else text[: _MAX_SHOWN * 2 - 1] + "…"
