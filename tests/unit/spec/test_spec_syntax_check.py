"""Syntax checked at load time without an engine: python3 scripts (ast), JavaScript expressions
(the text scanner shared with the runtime). Valid Windmill expressions are never rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from spec_helpers import by_path, errors, flow, line, step, write

from airflow_openflow.spec import load_flow
from airflow_openflow.spec.js_text import has_code_semicolon, syntax_problem
from airflow_openflow.spec.syntax_check import check_syntax
from tests.corpus import case_files, missing_message

REPO = Path(__file__).resolve().parents[3]


def test_a_python_syntax_error_names_the_line_inside_the_script(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "flow.yaml",
        """
        summary: s
        value:
          modules:
            - id: a
              value:
                type: rawscript
                language: python3
                content: |
                  def main(x):
                      return (x +
                input_transforms: {}
        """,
    )
    [problem] = errors(path)
    assert problem.json_path == "value.modules[0].value.content"
    assert problem.line == line(path, "content: |")
    assert problem.message.startswith("Python syntax error: ")
    assert "line 2" in problem.message and "of the script" in problem.message
    assert problem.hint


def test_python_steps_in_loops_and_special_modules_are_checked() -> None:
    bad = "def main(:\n    pass\n"
    loop = {
        "id": "l",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "static", "value": [1]},
            "modules": [step("b", bad)],
        },
    }
    document = flow(step("a"), loop, failure_module=step("failure", bad))
    assert set(by_path(errors(document))) == {
        "value.modules[1].value.modules[0].value.content",
        "value.failure_module.value.content",
    }


def test_other_languages_are_not_parsed_as_python() -> None:
    assert errors(flow(step("a", "echo $((1 + ", language="bash"))) == []


@pytest.mark.parametrize(
    ("where", "expr", "message"),
    [
        ("transform", "results.a + (1", "'(' is never closed (line 1, column 13 of the expression)"),
        ("transform", "`total: ${flow_input.n", "the template literal is never closed"),
        ("transform", "'abc", "the string is never closed (line 1, column 1 of the expression)"),
        ("transform", "[1, 2)", "')' does not close the '[' opened at line 1, column 1"),
        ("transform", "x /* note", "the comment is never closed"),
        ("stop_after_if", "result.ok)", "')' closes nothing (line 1, column 10 of the expression)"),
        ("skip_if", "flow_input.x == 'a", "the string is never closed"),
    ],
)
def test_javascript_syntax_errors(where: str, expr: str, message: str) -> None:
    module = step("a")
    if where == "transform":
        module["value"]["input_transforms"] = {"x": {"type": "javascript", "expr": expr}}
        path = "value.modules[0].value.input_transforms.x.expr"
    else:
        module[where] = {"expr": expr}
        path = f"value.modules[0].{where}.expr"
    [problem] = errors(flow(module))
    assert problem.json_path == path
    assert problem.message.startswith("JavaScript syntax error: ")
    assert message in problem.message
    assert problem.hint


def test_every_expression_place_is_checked() -> None:
    bad = {"type": "javascript", "expr": "(("}
    loop = {
        "id": "l",
        "value": {"type": "forloopflow", "iterator": bad, "parallelism": bad, "modules": [step("b")]},
        "stop_after_all_iters_if": {"expr": "(("},
        "sleep": bad,
        "retry": {"constant": {"attempts": 1, "seconds": 1}, "retry_if": {"expr": "(("}},
    }
    branch = {
        "id": "c",
        "value": {"type": "branchone", "branches": [{"expr": "((", "modules": []}], "default": []},
        "suspend": {"required_events": 1, "user_groups_required": bad},
        "timeout": bad,
    }
    document = flow(loop, branch, skip_expr="((")
    assert set(by_path(errors(document))) == {
        "value.skip_expr",
        "value.modules[0].value.iterator.expr",
        "value.modules[0].value.parallelism.expr",
        "value.modules[0].stop_after_all_iters_if.expr",
        "value.modules[0].sleep.expr",
        "value.modules[0].retry.retry_if.expr",
        "value.modules[1].value.branches[0].expr",
        "value.modules[1].suspend.user_groups_required.expr",
        "value.modules[1].timeout.expr",
    }


@pytest.mark.parametrize(
    "expr",
    [
        "flow_input.n / 2 / (results.a + 1)",
        "/[(]/.test(flow_input.s) ? 1 : 0",
        "return /\\)/.test(x)",
        "typeof /[{]/ === 'object'",
        "i++ / 2 + (b / 3)",
        "`a ${`b ${flow_input.c}`} d ${ {x: 1}.x }`",
        "`{ not code ( [`",
        "'it\\'s (' + \"[\" + `}`",
        "// a (comment\nflow_input.x",
        "/* ) */ flow_input.x",
        "x => ({a: [1, {b: 2}]})",
        "const s = 'a;b'\nreturn s.split(';')",
        "import { previous_result } from 'windmill@1'\nprevious_result",
        "results['x-y']?.value ?? null",
        "'a\\\nb'",
        "",
    ],
)
def test_valid_javascript_is_not_rejected(expr: str) -> None:
    assert syntax_problem(expr) is None


def test_the_runtime_reads_semicolons_as_before() -> None:
    assert has_code_semicolon("let a = 1; return a")
    for expr in ["'a;b'", "`x;${1};y`", "x // ;", "/;/.test(s)", "return /;/.test(s)"]:
        assert not has_code_semicolon(expr), expr


def _documents() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    cases = case_files()
    assert cases, missing_message()  # the check must not pass on an empty list
    for case in cases + case_files("cases-typescript"):
        found.append((case.stem, json.loads(case.read_text(encoding="utf-8"))["flow"]))
    for document in sorted((REPO / "dags" / "flows").rglob("flow.yaml")):
        found.append((document.parent.name, document))
    return found


@pytest.mark.parametrize(("name", "document"), _documents(), ids=[name for name, _ in _documents()])
def test_corpus_and_example_flows_pass_the_syntax_check(name: str, document: Any) -> None:
    assert check_syntax(load_flow(document).flow) == []
