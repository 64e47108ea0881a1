"""spec/suggest.py: "did you mean ...?" for misspelt step types, languages, fields, JSON Schema types
and step ids in expressions, wherever the problem shows: `validate`, the placeholder DAG of a broken
flow, `run_flow`'s error, and a failed step's error message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_openflow.runtime.step import unknown_results_hint
from airflow_openflow.spec import FlowDocumentError, load_flow
from airflow_openflow.spec.suggest import close_names, did_you_mean, language_suggestion
from airflow_openflow.spec.validate import validate_flow

TYPES = ["rawscript", "script", "flow", "forloopflow", "whileloopflow", "branchone", "branchall", "identity"]


def script(step_id: str, language: str = "python3", **value: Any) -> dict[str, Any]:
    content = "def main(x=None):\n    return x\n"
    return {"id": step_id, "value": {"type": "rawscript", "language": language, "content": content, **value}}


def reads(step_id: str, expr: str) -> dict[str, Any]:
    return script(step_id, input_transforms={"x": {"type": "javascript", "expr": expr}})


@pytest.mark.parametrize(
    ("word", "candidates", "expected"),
    [
        ("rawscrip", TYPES, "did you mean 'rawscript'?"),
        ("forloop", TYPES, "did you mean 'forloopflow'?"),
        ("Identity", TYPES, "did you mean 'identity'?"),
        ("totl", ["total", "receipt", "summary"], "did you mean 'total'?"),
        ("ab", ["abc", "abd"], "did you mean 'abc' or 'abd'?"),
        ("zzz", TYPES, ""),
        ("identity", TYPES, ""),  # a right name is not corrected
    ],
)
def test_did_you_mean(word: str, candidates: list[str], expected: str) -> None:
    assert did_you_mean(word, candidates) == expected


def test_languages_are_suggested_from_every_windmill_language_and_common_names() -> None:
    assert language_suggestion("pyhton3") == "did you mean 'python3'?"
    assert language_suggestion("postgres") == "did you mean 'postgresql'?"  # not run here, still named
    assert language_suggestion("typescript") == "did you mean 'bun'?"
    assert language_suggestion("bash") == "" and language_suggestion("cobol") == ""
    assert close_names("Deno", ["deno", "bun"]) == ["deno"]


def _messages(document: dict[str, Any]) -> list[str]:
    return [p.message for p in validate_flow(document)]


def test_validate_suggests_the_step_type() -> None:
    document = {"summary": "s", "value": {"modules": [{"id": "a", "value": {"type": "rawscrip"}}]}}
    (message,) = _messages(document)
    assert message.startswith("unknown step type 'rawscrip': did you mean 'rawscript'? (known types: ")


def test_validate_suggests_the_language_and_the_field() -> None:
    step = {**script("a", "pyhton3"), "summry": "Price"}
    messages = _messages({"summary": "s", "value": {"modules": [step]}})
    assert "unknown field 'summry' is ignored: did you mean 'summary'?" in messages
    (language,) = [m for m in messages if m.startswith("language")]
    assert "(not a Windmill language) is not supported" in language
    assert language.endswith("; did you mean 'python3'?")


def test_validate_suggests_the_json_schema_type() -> None:
    document = {"summary": "s", "schema": {"type": "object", "properties": {"n": {"type": "strnig"}}}}
    assert "\"strnig\" is not a JSON Schema type: did you mean 'string'?" in _messages(
        {**document, "value": {"modules": []}}
    )


def test_a_misspelt_step_id_in_an_expression_is_a_warning_with_the_close_ids() -> None:
    modules = [
        script("total"),
        reads("b", "results.totl.total + results['totall'] + 'results.totel' // results.tota"),
        reads("c", "results.nonexistent ?? 'default'"),  # close to no id: null on purpose
    ]
    problems = load_flow({"summary": "s", "value": {"modules": modules}}).warnings
    assert [(p.json_path, p.message) for p in problems] == [
        (
            "value.modules[1].value.input_transforms.x.expr",
            "results.totl: no step of this flow has the id 'totl', so it reads null: did you mean 'total'?",
        ),
        (
            "value.modules[1].value.input_transforms.x.expr",
            "results.totall: no step of this flow has the id 'totall', so it reads null: "
            "did you mean 'total'?",
        ),
    ]


def test_the_placeholder_dag_and_run_flow_show_the_suggestion(tmp_path: Path) -> None:
    from airflow_openflow.dag_factory import load_openflow_dags
    from airflow_openflow.runner import run_flow

    document = {"summary": "s", "value": {"modules": [script("a", "pyhton3")]}}
    with pytest.raises(FlowDocumentError, match=r"did you mean 'python3'\?"):
        run_flow(document)  # refused before Airflow starts
    (tmp_path / "bad.yaml").write_text(
        "summary: s\nvalue:\n  modules:\n    - id: a\n      value: {type: identty}\n"
    )
    dag = load_openflow_dags(tmp_path)["bad"]
    assert "openflow-invalid" in dag.tags and "did you mean 'identity'?" in dag.doc_md


class _Ctx:
    def readable_step_ids(self) -> set[str]:
        return {"total", "receipt"}


def test_a_failed_expression_names_the_step_id_it_misspelt() -> None:
    hint = unknown_results_hint("results.totl.total + results.receipt + results.x", _Ctx())
    assert hint == (
        "results.totl is null: no step before this one has the id 'totl'; did you mean 'total'?; "
        "results.x is null: no step before this one has the id 'x'"
    )
    assert unknown_results_hint("results.total.x", _Ctx()) == ""
    assert unknown_results_hint("results.totl.x", object()) == ""  # a context that cannot tell
