"""Validation rules: every error with its exact line and json_path, warnings, legacy forms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from spec_helpers import FIXTURES, by_path, errors, flow, line, step, write

from airflow_openflow.spec import FlowDocumentError, load_flow, validate_flow
from airflow_openflow.spec.model import RawScript

KNOWN = "rawscript, script, flow, forloopflow, whileloopflow, branchone, branchall, identity, aiagent"

# (json_path, line in fixtures/errors.yaml, part of the message)
EXPECTED_ERRORS = [
    ("value.modules[0]", 5, "a step must be a mapping, got string"),
    ("value.modules[1].id", 6, "missing required field 'id'"),
    ("value.modules[2].id", 8, "step id must be a string, got number"),
    ("value.modules[3].id", 10, "step id is empty"),
    ("value.modules[4].value", 12, "missing required field 'value'"),
    ("value.modules[5].value.type", 14, f"missing required field 'type' (known types: {KNOWN})"),
    ("value.modules[6].value.type", 16, f"unknown step type 'pythonscript' (known types: {KNOWN})"),
    ("value.modules[7].value.language", 18, "missing required field 'language'"),
    ("value.modules[8].value.content", 22, "missing required field 'content'"),
    ("value.modules[9].value.path", 24, "missing required field 'path'"),
    ("value.modules[10].value.path", 26, "missing required field 'path'"),
    ("value.modules[11].value.iterator", 28, "missing required field 'iterator'"),
    ("value.modules[11].value.modules", 28, "missing required field 'modules'"),
    ("value.modules[12].value.branches[0].expr", 33, "missing required field 'expr'"),
    ("value.modules[12].value.default", 30, "missing required field 'default'"),
    ("value.modules[13].value.branches", 35, "missing required field 'branches'"),
    ("value.modules[14].value.input_transforms.a", 42, "input transform must be a mapping, got number"),
    (
        "value.modules[14].value.input_transforms.b.type",
        43,
        "must be 'static', 'javascript' or 'ai', got 'js'",
    ),
    ("value.modules[14].value.input_transforms.c.expr", 44, "missing required field 'expr'"),
    ("value.modules[14].value.input_transforms.d.expr", 45, "'expr' must be a string, got number"),
    ("value.modules[15].value.parallel", 52, "'parallel' must be a boolean, got number"),
    ("value.modules[15].value.modules", 53, "'modules' must be a list, got mapping"),
    ("value.modules[15].continue_on_error", 47, "'continue_on_error' must be a boolean, got string"),
    ("value.modules[16].summary", 55, "'summary' must be a string, got list"),
    ("value.modules[16].cache_ttl", 56, "'cache_ttl' must be a number, got string"),
    (
        "value.modules[17].id",
        58,
        "duplicate step id 'no_value': already used by the step at value.modules[4]",
    ),
    ("value.modules[18].id", 60, "step id 'has.dot' cannot be used as an Airflow task id"),
    ("value.modules[19].id", 62, "step id 'failure' is reserved for failure_module"),
    ("value.modules[20].id", 64, "step id 'preprocessor' is reserved for preprocessor_module"),
    ("value.modules[21].id", 66, "step id 'Input' is reserved"),
    (
        "value.modules[22].value.branches[0].modules[0].id",
        73,
        "duplicate step id 'loop': already used by the step at value.modules[11]",
    ),
    ("value.failure_module.id", 76, "duplicate step id 'all': already used by the step at value.modules[13]"),
]


def test_every_error_of_the_fixture_with_line_and_path() -> None:
    path = FIXTURES / "errors.yaml"
    problems = errors(path)
    found = by_path(problems)  # one error per json_path
    assert {k: (v.line, v.message) for k, v in found.items()} == {
        json_path: (expected_line, found[json_path].message)
        for json_path, expected_line, _ in EXPECTED_ERRORS
    }
    for json_path, _, message in EXPECTED_ERRORS:
        assert message in found[json_path].message, json_path
    assert all(p.file == str(path) and p.hint for p in problems)  # where, and what to do


def test_load_flow_raises_with_all_errors_of_the_fixture() -> None:
    with pytest.raises(FlowDocumentError) as info:
        load_flow(FIXTURES / "errors.yaml")
    assert len(info.value.problems) == len(EXPECTED_ERRORS)
    assert info.value.file == str(FIXTURES / "errors.yaml")


def test_same_errors_in_json_with_json_lines(tmp_path: Path) -> None:
    document = flow(step("a"), {"id": "a", "value": {"type": "identity", "flow": "no"}})
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    found = by_path(errors(path))
    assert set(found) == {"value.modules[1].id", "value.modules[1].value.flow"}
    text_lines = path.read_text().splitlines()
    duplicate = found["value.modules[1].id"]
    assert duplicate.line is not None and text_lines[duplicate.line - 1].strip() == '"id": "a",'
    assert duplicate.line == max(i for i, t in enumerate(text_lines, 1) if '"id": "a"' in t)
    assert found["value.modules[1].value.flow"].line == line(path, '"flow": "no"')
    assert found["value.modules[1].value.flow"].message == "'flow' must be a boolean, got string"


# ---------------------------------------------------------------------------------------------
# Document-level errors


def test_malformed_json_uses_parser_position(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", '{\n  "summary": "x",\n  "value": {"modules": [}\n}\n')
    [problem] = validate_flow(path)
    assert problem.line == 3
    assert problem.message.startswith("invalid JSON: ")
    assert "(line 3, column 25)" in problem.message
    assert problem.json_path == ""


def test_malformed_yaml_uses_parser_position(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "summary: x\nvalue:\n  modules:\n  - id: a\n   value: 1\n")
    [problem] = validate_flow(path)
    assert problem.line == 5
    assert problem.message.startswith("invalid YAML: ")
    assert problem.file == str(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("summary: caf\xe9\n".encode("latin-1"))
    [problem] = validate_flow(path)
    assert "not UTF-8" in problem.message


@pytest.mark.parametrize(
    ("text", "json_path", "message", "expected_line"),
    [
        ("- 1\n- 2\n", "", "the document must be a mapping with 'summary' and 'value', got list", 1),
        ("", "", "got null", None),
        ("summary: x\n", "value", "missing required field 'value'", 1),
        ("summary: x\nvalue: [1]\n", "value", "'value' must be a mapping, got list", 2),
        (
            "summary: x\nvalue:\n  same_worker: false\n",
            "value.modules",
            "missing required field 'modules'",
            2,
        ),
        (
            "summary: x\nvalue:\n  modules: {a: 1}\n",
            "value.modules",
            "'modules' must be a list, got mapping",
            3,
        ),
        ("summary: [x]\nvalue: {modules: []}\n", "summary", "'summary' must be a string, got list", 1),
    ],
)
def test_document_shape_errors(
    tmp_path: Path, text: str, json_path: str, message: str, expected_line: int | None
) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(text, encoding="utf-8")
    [problem] = errors(path)
    assert problem.json_path == json_path
    assert message in problem.message
    if expected_line is not None:
        assert problem.line == expected_line


def test_missing_summary_is_only_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "value:\n  modules: []\n")
    loaded = load_flow(path)
    assert loaded.flow.summary == ""
    [warning] = loaded.warnings
    assert (warning.severity, warning.json_path, warning.message) == (
        "warning",
        "summary",
        "missing field 'summary'",
    )


def test_empty_modules_is_valid() -> None:
    assert load_flow({"summary": "x", "value": {"modules": []}}).flow.value.modules == []


def test_nulls_mean_absent() -> None:
    document = flow(
        {
            "id": "a",
            "summary": None,
            "stop_after_if": None,
            "retry": None,
            "sleep": None,
            "value": {"type": "rawscript", "language": "bash", "content": "echo", "lock": None, "tag": None},
        },
        failure_module=None,
        same_worker=None,
    )
    loaded = load_flow({**document, "description": None, "schema": None})
    module = loaded.flow.value.modules[0]
    assert (module.summary, module.stop_after_if, module.retry, module.sleep) == (None, None, None, None)
    assert loaded.flow.value.same_worker is False
    assert loaded.warnings == []


# ---------------------------------------------------------------------------------------------
# Ids


def test_duplicate_ids_across_nesting_and_special_modules() -> None:
    document = flow(
        step("a"),
        {"id": "loop", "value": {"type": "whileloopflow", "skip_failures": False, "modules": [step("a")]}},
        failure_module=step("loop"),
        preprocessor_module=step("a"),
    )
    found = by_path(errors(document))
    assert set(found) == {
        "value.modules[1].value.modules[0].id",
        "value.failure_module.id",
        "value.preprocessor_module.id",
    }
    assert (
        "already used by the step at value.modules[0]"
        in found["value.modules[1].value.modules[0].id"].message
    )
    assert "already used by the step at value.modules[1]" in found["value.failure_module.id"].message


def test_reserved_ids_are_fine_on_their_own_modules() -> None:
    document = flow(step("a"), failure_module=step("failure"), preprocessor_module=step("preprocessor"))
    loaded = load_flow(document)
    assert loaded.flow.value.failure_module is not None and loaded.flow.value.failure_module.id == "failure"


@pytest.mark.parametrize("step_id", ["ok-id_1", "A" * 200])
def test_valid_ids(step_id: str) -> None:
    assert errors(flow(step(step_id))) == []


@pytest.mark.parametrize("step_id", ["a b", "a.b", "é", "A" * 201, "results[0]"])
def test_invalid_ids(step_id: str) -> None:
    [problem] = errors(flow(step(step_id)))
    assert problem.json_path == "value.modules[0].id"
    assert "cannot be used as an Airflow task id" in problem.message
    assert "letters, digits, '_' and '-'" in (problem.hint or "")


# ---------------------------------------------------------------------------------------------
# Field types


@pytest.mark.parametrize(
    ("module_fields", "json_path", "message"),
    [
        ({"skip_if": {"expr": 1}}, "value.modules[0].skip_if.expr", "'expr' must be a string, got number"),
        ({"skip_if": {}}, "value.modules[0].skip_if.expr", "missing required field 'expr'"),
        ({"stop_after_if": "x"}, "value.modules[0].stop_after_if", "'stop_after_if' must be a mapping"),
        (
            {"stop_after_if": {"expr": "true", "skip_if_stopped": "no"}},
            "value.modules[0].stop_after_if.skip_if_stopped",
            "'skip_if_stopped' must be a boolean, got string",
        ),
        (
            {"mock": {"enabled": 1}},
            "value.modules[0].mock.enabled",
            "'enabled' must be a boolean, got number",
        ),
        ({"priority": True}, "value.modules[0].priority", "'priority' must be a number, got boolean"),
        (
            {"retry": {"constant": {"attempts": 1.5}}},
            "value.modules[0].retry.constant.attempts",
            "'attempts' must be an integer, got number",
        ),
        (
            {"retry": {"exponential": {"attempts": 2, "seconds": 0}}},
            "value.modules[0].retry.exponential.seconds",
            "exponential retry 'seconds' must be at least 1",
        ),
        (
            {"suspend": {"required_events": "1"}},
            "value.modules[0].suspend.required_events",
            "'required_events' must be an integer, got string",
        ),
        ({"sleep": "5"}, "value.modules[0].sleep", "input transform must be a mapping, got string"),
    ],
)
def test_module_field_types(module_fields: dict[str, object], json_path: str, message: str) -> None:
    [problem] = errors(flow({**step("a"), **module_fields}))
    assert problem.json_path == json_path
    assert message in problem.message


@pytest.mark.parametrize(
    ("value_fields", "json_path", "message"),
    [
        ({"language": 3}, "value.modules[0].value.language", "'language' must be a string, got number"),
        ({"lock": ["x"]}, "value.modules[0].value.lock", "'lock' must be a string, got list"),
        ({"is_trigger": "true"}, "value.modules[0].value.is_trigger", "'is_trigger' must be a boolean"),
        ({"assets": {}}, "value.modules[0].value.assets", "'assets' must be a list, got mapping"),
        ({"input_transforms": []}, "value.modules[0].value.input_transforms", "must be a mapping, got list"),
    ],
)
def test_rawscript_field_types(value_fields: dict[str, object], json_path: str, message: str) -> None:
    [problem] = errors(flow(step("a", **value_fields)))
    assert problem.json_path == json_path
    assert message in problem.message


@pytest.mark.parametrize(
    ("flow_fields", "json_path", "message"),
    [
        ({"same_worker": "yes"}, "value.same_worker", "'same_worker' must be a boolean, got string"),
        ({"concurrent_limit": "2"}, "value.concurrent_limit", "'concurrent_limit' must be a number"),
        ({"flow_env": []}, "value.flow_env", "'flow_env' must be a mapping, got list"),
        ({"notes": {}}, "value.notes", "'notes' must be a list, got mapping"),
        ({"failure_module": []}, "value.failure_module", "a step must be a mapping, got list"),
    ],
)
def test_flow_value_field_types(flow_fields: dict[str, object], json_path: str, message: str) -> None:
    [problem] = errors(flow(step("a"), **flow_fields))
    assert problem.json_path == json_path
    assert message in problem.message


def test_bare_numbers_for_sleep_timeout_parallelism_are_static() -> None:
    document = flow(
        {**step("a"), "sleep": 5, "timeout": 60},
        {
            "id": "l",
            "value": {
                "type": "forloopflow",
                "iterator": {"type": "javascript", "expr": "[1]"},
                "skip_failures": True,
                "parallel": True,
                "parallelism": 4,
                "modules": [],
            },
        },
    )
    modules = load_flow(document).flow.value.modules
    assert modules[0].sleep is not None and (modules[0].sleep.kind, modules[0].sleep.value) == ("static", 5)
    assert modules[0].timeout is not None and modules[0].timeout.value == 60
    parallelism = modules[1].value.parallelism  # type: ignore[union-attr]
    assert parallelism.kind == "static" and parallelism.value == 4


# ---------------------------------------------------------------------------------------------
# Warnings: unknown fields, legacy forms


def test_unknown_fields_are_kept_and_warned(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "extra.yaml",
        """
        summary: x
        owner: me
        value:
          colour: red
          modules:
            - id: a
              flavour: vanilla
              value:
                type: rawscript
                language: bash
                content: echo hi
                shebang: yes
                input_transforms:
                  x: {type: static, value: 1, note: hi}
              stop_after_if: {expr: "true", why: because}
        """,
    )
    loaded = load_flow(path)
    found = by_path(loaded.warnings)
    assert {k: v.line for k, v in found.items()} == {
        "owner": 2,
        "value.colour": 4,
        "value.modules[0].flavour": 7,
        "value.modules[0].value.shebang": 12,
        "value.modules[0].value.input_transforms.x.note": 14,
        "value.modules[0].stop_after_if.why": 15,
    }
    assert found["owner"].message == "unknown field 'owner' is ignored"
    assert all(w.severity == "warning" and w.file == str(path) for w in loaded.warnings)
    flow_ = loaded.flow
    assert flow_.extra == {"owner": "me"}
    assert flow_.value.extra == {"colour": "red"}
    assert flow_.value.modules[0].extra == {"flavour": "vanilla"}
    assert flow_.value.modules[0].value.extra == {"shebang": "yes"}  # type: ignore[union-attr]


def test_unknown_field_with_odd_name_uses_bracket_path() -> None:
    [warning] = load_flow({**flow(step("a")), "x-y": 1}).warnings
    assert warning.json_path == '["x-y"]'


def test_legacy_module_level_input_transforms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "legacy.yaml",
        """
        summary: old
        value:
          modules:
            - id: a
              input_transforms:
                n: {type: javascript, expr: flow_input.n}
              value:
                type: rawscript
                language: python3
                content: "def main(n): return n"
        """,
    )
    loaded = load_flow(path)
    [warning] = loaded.warnings
    assert warning.json_path == "value.modules[0].input_transforms"
    assert warning.line == 5
    assert "legacy module-level 'input_transforms' moved into value.input_transforms" in warning.message
    value = loaded.flow.value.modules[0].value
    assert isinstance(value, RawScript)
    assert value.input_transforms["n"].expr == "flow_input.n"
    assert value.input_transforms["n"].json_path == "value.modules[0].input_transforms.n"


def test_legacy_input_transforms_errors_point_at_their_place() -> None:
    document = flow({**step("a"), "input_transforms": {"n": {"type": "javascript"}}})
    [problem] = errors(document)
    assert problem.json_path == "value.modules[0].input_transforms.n.expr"


def test_legacy_and_new_input_transforms_together() -> None:
    document = flow(
        {
            **step("a", input_transforms={"x": {"type": "static", "value": 1}}),
            "input_transforms": {"y": {"type": "static", "value": 2}},
        }
    )
    loaded = load_flow(document)
    assert "ignored: value.input_transforms is also set" in loaded.warnings[0].message
    assert list(loaded.flow.value.modules[0].value.input_transforms) == ["x"]  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# validate_flow


def test_validate_flow_never_raises_and_sorts_errors_first(tmp_path: Path) -> None:
    assert validate_flow(tmp_path / "missing.json")[0].message == "flow file not found"
    document = {"value": {"modules": [step("a", language="nu"), {**step("a"), "odd": 1}]}}
    problems = validate_flow(document)
    assert [(p.severity, p.json_path) for p in problems] == [
        ("error", "value.modules[1].id"),
        ("warning", "summary"),
        ("warning", "value.modules[1].odd"),
    ]


def test_validate_flow_includes_support_problems() -> None:
    document = flow(step("a", language="php"))
    [problem] = validate_flow(document)
    assert problem.message.startswith("language 'php' is not supported; supported: python3, bash")
    assert validate_flow(document, supported=False) == []
