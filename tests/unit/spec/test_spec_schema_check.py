"""The flow's ``schema`` and ``resume_form.schema`` checked with jsonschema at load time: keyword
errors, regexes, ``$ref``s, defaults, ``required`` and ``properties``, with file, line and path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from spec_helpers import by_path, errors, flow, line, step, warnings, write

from airflow_openflow.spec import load_flow

HEADER = """
summary: s
schema:
  $schema: https://json-schema.org/draft/2020-12/schema
  type: object
"""
STEPS = """
value:
  modules:
    - id: a
      value: {type: identity}
"""


def _document(tmp_path: Path, schema_body: str) -> Path:
    return write(tmp_path, "flow.yaml", HEADER + schema_body + STEPS)


def _with_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {**flow(step("a")), "schema": schema}


def test_keyword_errors_name_the_path_inside_the_schema_and_the_line(tmp_path: Path) -> None:
    path = _document(
        tmp_path,
        """
  properties:
    x: {type: strnig}
    y: {type: string, pattern: "(["}
    z: {type: integer, minimum: "five"}
""",
    )
    found = by_path(errors(path))
    assert set(found) == {
        "schema.properties.x.type",
        "schema.properties.y.pattern",
        "schema.properties.z.minimum",
    }
    kind = found["schema.properties.x.type"]
    assert kind.message == "\"strnig\" is not a JSON Schema type: did you mean 'string'?"
    assert kind.hint and "string, number, integer" in kind.hint
    assert kind.line == line(path, "x: {type: strnig}") and kind.file == str(path)
    pattern = found["schema.properties.y.pattern"]
    assert pattern.message.startswith('"([" is not a regular expression')
    assert pattern.line == line(path, "pattern")
    minimum = found["schema.properties.z.minimum"]
    assert minimum.message == "invalid JSON Schema: 'five' is not of type 'number'"
    assert minimum.line == line(path, "minimum")


def test_a_default_that_breaks_its_own_schema_is_a_warning(tmp_path: Path) -> None:
    """Windmill never checks a default against its schema and runs with it: the flow loads."""
    path = _document(
        tmp_path,
        """
  properties:
    n: {type: integer, default: "seven"}
    mode: {type: string, enum: [a, b], default: c}
    fine: {type: integer, default: 3}
    empty: {type: string, default: null}
""",
    )
    assert errors(path) == []
    found = by_path(warnings(path))
    assert set(found) == {"schema.properties.n.default", "schema.properties.mode.default"}
    problem = found["schema.properties.n.default"]
    assert problem.message == (
        "the default \"seven\" of input 'n' does not match its schema: 'seven' is not of type 'integer'; "
        "the trigger form does not check this input"
    )
    assert problem.line == line(path, "seven")
    assert "'c' is not one of ['a', 'b']" in found["schema.properties.mode.default"].message


def test_a_default_of_a_broken_input_is_not_judged_but_the_others_are() -> None:
    schema = {
        "type": "object",
        "properties": {"x": {"type": "strnig", "default": 1}, "n": {"type": "integer", "default": "a"}},
    }
    document = _with_schema(schema)
    assert set(by_path(errors(document))) == {"schema.properties.x.type"}
    assert "schema.properties.n.default" in by_path(warnings(document))


def test_a_resource_default_gets_its_own_hint() -> None:
    schema = {"type": "object", "properties": {"db": {"type": "object", "default": "$res:f/db/main"}}}
    [problem] = errors(_with_schema(schema))
    assert problem.json_path == "schema.properties.db.default"
    assert problem.hint and "$res:/$var: default" in problem.hint


@pytest.mark.parametrize("defs", ["$defs", "definitions"])
def test_refs_to_the_schemas_own_definitions_load(defs: str) -> None:
    schema = {
        "type": "object",
        defs: {"name": {"type": "string", "minLength": 1}, "names": {"items": {"$ref": f"#/{defs}/name"}}},
        "properties": {
            "who": {"$ref": f"#/{defs}/name", "default": "ada"},
            "all": {"type": "array", "$ref": f"#/{defs}/names", "default": ["a"]},
        },
    }
    assert errors(_with_schema(schema)) == []


def test_a_default_is_checked_through_its_ref() -> None:
    schema = {
        "type": "object",
        "$defs": {"name": {"type": "string", "minLength": 1}},
        "properties": {"who": {"$ref": "#/$defs/name", "default": ""}},
    }
    [problem] = [w for w in warnings(_with_schema(schema)) if w.json_path.endswith(".default")]
    assert problem.json_path == "schema.properties.who.default"
    assert "should be non-empty" in problem.message


def test_refs_that_point_nowhere_or_elsewhere(tmp_path: Path) -> None:
    path = _document(
        tmp_path,
        """
  $defs:
    name: {type: string}
  properties:
    a: {$ref: "#/$defs/nmae"}
    b: {$ref: "#/properties/a"}
    c: {$ref: "https://example.com/schema.json"}
""",
    )
    found = by_path(errors(path))
    assert set(found) == {
        'schema.properties.a["$ref"]',
        'schema.properties.b["$ref"]',
        'schema.properties.c["$ref"]',
    }
    nowhere = found['schema.properties.a["$ref"]']
    assert nowhere.message == "$ref '#/$defs/nmae' points to nothing: the schema has no $defs.nmae"
    assert nowhere.line == line(path, "nmae")
    assert "only references to this schema's own $defs" in found['schema.properties.b["$ref"]'].message


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("required", "name", "'required' must be a list of input names (strings), got \"name\""),
        ("required", [1, "b"], "'required' must be a list of input names (strings), got [1, \"b\"]"),
        ("properties", ["a", "b"], "'properties' must be a mapping of input name to schema, got list"),
    ],
)
def test_required_and_properties_must_have_their_shape(key: str, value: Any, message: str) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, key: value}
    found = by_path(errors(_with_schema(schema)))
    assert set(found) == {f"schema.{key}"}  # said once, not again by the metaschema
    assert found[f"schema.{key}"].message == message
    assert found[f"schema.{key}"].hint


def test_an_input_schema_that_is_not_a_mapping() -> None:
    schema = {"type": "object", "properties": {"a": "string"}}
    [problem] = errors(_with_schema(schema))
    assert problem.json_path == "schema.properties.a"
    assert problem.message == "the schema of input 'a' must be a mapping, got string"
    assert problem.hint == "write a: {type: string}"


def test_the_declared_dialect_is_used() -> None:
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"}
    draft4["properties"] = {"n": {"type": "number", "minimum": 1, "exclusiveMinimum": True}}
    assert errors(_with_schema(draft4)) == []  # a draft-04 boolean
    latest = {**draft4, "$schema": "https://json-schema.org/draft/2020-12/schema"}
    [problem] = errors(_with_schema(latest))
    assert problem.json_path == "schema.properties.n.exclusiveMinimum"


def test_an_unknown_dialect_is_a_warning_and_checked_as_2020_12() -> None:
    schema = {"$schema": "https://example.com/my-dialect", "type": "object", "properties": {}}
    [problem] = warnings(_with_schema(schema))
    assert problem.json_path == 'schema["$schema"]'
    assert "checked as draft 2020-12" in problem.message


def test_the_resume_form_schema_is_checked_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "flow.yaml",
        """
        summary: s
        value:
          modules:
            - id: a
              value: {type: identity}
              suspend:
                required_events: 1
                resume_form:
                  schema:
                    type: object
                    properties:
                      ok: {type: bool}
                      note: {type: string, default: 3}
            - id: b
              value: {type: identity}
              suspend:
                resume_form:
                  schema: [not, a, schema]
        """,
    )
    found = by_path(errors(path))
    form = "value.modules[0].suspend.resume_form.schema"
    assert set(found) == {
        f"{form}.properties.ok.type",
        "value.modules[1].suspend.resume_form.schema",
    }
    assert f"{form}.properties.note.default" in by_path(warnings(path))
    assert found[f"{form}.properties.ok.type"].line == line(path, "ok: {type: bool}")
    assert found["value.modules[1].suspend.resume_form.schema"].message.startswith(
        "'resume_form.schema' must be a mapping"
    )


def test_windmill_schemas_load() -> None:
    """What Windmill's editor writes: order, password, resource formats, nullable defaults."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "order": ["name", "token", "db", "tags", "when"],
        "properties": {
            "name": {"type": "string", "description": "", "default": None, "originalType": "string"},
            "token": {"type": "string", "password": True, "default": ""},
            "db": {"type": "object", "format": "resource-postgresql"},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "default": ["a"]},
            "when": {
                "type": "string",
                "format": "date-time",
                "pattern": "^\\d{4}-",
                "default": "2024-01-01T00:00:00Z",
            },
            "choice": {"type": "string", "enum": ["x", "y"], "enumLabels": {"x": "X"}, "disableCreate": True},
            "any": {},
        },
        "required": ["name"],
    }
    assert errors(_with_schema(schema)) == []
    assert load_flow(_with_schema(schema)).warnings == []


def test_inputs_of_a_shape_seen_valid_are_still_judged_exactly() -> None:
    """Inputs that differ only in annotations are checked once per process; that shortcut must
    never pass an invalid input nor fail a valid one."""

    def schema(**properties: Any) -> dict[str, Any]:
        return {"type": "object", "properties": properties}

    ok = {"type": "string", "description": "a", "default": "x"}
    assert errors(_with_schema(schema(a=ok, b={**ok, "description": "other", "default": "y"}))) == []
    [problem] = errors(_with_schema(schema(a={**ok, "description": 5})))
    assert problem.json_path == "schema.properties.a.description"
    assert problem.message == "invalid JSON Schema: 5 is not of type 'string'"
    nested = {"type": "object", "properties": {"default": {"type": "integer"}, "title": {"type": "string"}}}
    assert errors(_with_schema(schema(a=nested))) == []  # inputs named like annotations
    [problem] = errors(_with_schema(schema(a={**nested, "properties": {"default": {"type": 3}}})))
    assert problem.json_path == "schema.properties.a.properties.default.type"
