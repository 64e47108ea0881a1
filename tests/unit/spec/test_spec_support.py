"""check_supported: what this release runs (python3/bash rawscript, identity), errors and warnings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from spec_helpers import by_path, flow, line, step

from airflow_openflow.spec import check_supported, load_flow
from airflow_openflow.spec.errors import Problem


def _check(document: dict[str, Any]) -> list[Problem]:
    return check_supported(load_flow(document).flow)


def _errors(document: dict[str, Any]) -> dict[str, Problem]:
    return by_path([p for p in _check(document) if p.severity == "error"])


def _warnings(document: dict[str, Any]) -> dict[str, Problem]:
    return by_path([p for p in _check(document) if p.severity == "warning"])


def test_supported_flow_has_no_problems() -> None:
    document = flow(
        {
            **step("a"),
            "summary": "first",
            "skip_if": {"expr": "false"},
            "mock": {"enabled": True, "return_value": 3},
            "continue_on_error": True,
            "stop_after_if": {"expr": "result", "skip_if_stopped": True, "error_message": None},
        },
        {
            **step("b", language="bash", content="echo $1"),
            "stop_after_if": {"expr": "1", "error_message": "x"},
        },
        {"id": "c", "value": {"type": "identity"}},
        notes=[{"id": "n", "text": "hi", "color": "yellow", "type": "free"}],
        chat_input_enabled=True,
        priority=3,
    )
    document["schema"] = {"type": "object", "properties": {}}
    document["description"] = "d"
    assert _check(document) == []


def test_default_valued_options_are_not_reported() -> None:
    # What the Windmill editor writes for switched-off settings.
    module = {
        **step("a"),
        "retry": {
            "constant": {"attempts": 0, "seconds": 0},
            "exponential": {"attempts": 0, "multiplier": 1, "seconds": 0, "random_factor": 0},
        },
        "sleep": {"type": "static", "value": 0},
        "timeout": {"type": "static", "value": None},
        "cache_ttl": 0,
        "suspend": {"required_events": 0},
        "delete_after_use": False,
        "mock": {"enabled": False},
    }
    assert _check(flow(module, same_worker=False, flow_env={}, skip_expr="")) == []


@pytest.mark.parametrize("language", ["nu", "powershell", "php", "rust", "csharp", "ansible"])
def test_other_languages(language: str) -> None:
    found = _errors(flow(step("a", language=language)))
    problem = found["value.modules[0].value.language"]
    assert problem.message.startswith(
        f"language '{language}' is not supported; supported: python3, bash, deno, bun, nativets"
    )
    assert problem.hint and "docs/languages.md" in problem.hint


def test_a_language_windmill_does_not_know_is_named_as_such() -> None:
    found = _errors(flow(step("a", language="cobol")))
    message = found["value.modules[0].value.language"].message
    assert "'cobol' (not a Windmill language) is not supported" in message


LOOP = {"type": "forloopflow", "iterator": {"type": "static", "value": []}, "skip_failures": False}


def test_ai_agent() -> None:
    [problem] = _check(flow({"id": "x", "value": {"type": "aiagent", "input_transforms": {}, "tools": []}}))
    assert problem.message == "not supported: AI agent steps"
    assert problem.json_path == "value.modules[0].value.type"


def test_nested_steps_are_checked_too() -> None:
    body = [{**step("b", language="nu"), "stop_after_if": {"expr": "true"}}]
    found = _errors(flow({"id": "l", "value": {**LOOP, "modules": body}}))
    assert set(found) == {"value.modules[0].value.modules[0].value.language"}


@pytest.mark.parametrize(
    "value",
    [
        {**LOOP, "modules": [step("b")]},
        {"type": "whileloopflow", "skip_failures": False, "modules": [step("b")]},
        {"type": "branchone", "branches": [{"expr": "true", "modules": [step("b")]}], "default": []},
        {"type": "branchall", "branches": [{"modules": [step("b")]}]},
    ],
)
def test_loops_and_branches_are_supported(value: dict[str, Any]) -> None:
    module = {
        "id": "l",
        "value": value,
        "stop_after_if": {"expr": "true"},
        "retry": {"constant": {"attempts": 1, "seconds": 0}},
    }
    if value["type"] in ("forloopflow", "whileloopflow"):  # only loops evaluate it here
        module["stop_after_all_iters_if"] = {"expr": "false"}
    assert _check(flow(module)) == []


def test_stop_after_all_iters_if_on_a_branchall_has_no_effect_yet() -> None:
    value = {"type": "branchall", "branches": [{"modules": [step("b")]}]}
    module = {"id": "l", "value": value, "stop_after_all_iters_if": {"expr": "false"}}
    found = _warnings(flow(module))
    assert set(found) == {"value.modules[0].stop_after_all_iters_if"}
    assert found["value.modules[0].stop_after_all_iters_if"].message.startswith(
        "'stop_after_all_iters_if' on a branchall has no effect yet"
    )


def test_same_worker_is_supported() -> None:
    sequential = {"id": "l", "value": {"type": "forloopflow", "iterator": {"type": "static", "value": [1]}}}
    sequential["value"]["modules"] = [step("b")]
    assert _check(flow(step("a"), sequential, same_worker=True)) == []


def test_same_worker_with_a_parallel_loop_warns() -> None:
    loop = {
        "id": "l",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "static", "value": [1]},
            "parallel": True,
            "modules": [step("b")],
        },
    }
    [problem] = _check(flow(step("a"), loop, same_worker=True))
    assert (problem.severity, problem.json_path) == ("warning", "value.same_worker")
    assert "parallel forloopflow 'l'" in problem.message and "last to finish wins" in problem.message
    assert _check(flow(step("a"), loop)) == []


def test_accepted_with_warning() -> None:
    document = flow(
        {**step("a", tag="gpu"), "delete_after_use": True, "priority": 10},
        concurrent_limit=2,
        concurrency_key="k",
        concurrency_time_window_s=60,
        debounce_delay_s=5,
        debounce_key="d",
        early_return="a",
    )
    document["timeout"] = 3600
    found = _warnings(document)
    assert set(found) == {
        "value.modules[0].value.tag",
        "value.modules[0].delete_after_use",
        "value.modules[0].priority",
        "value.concurrent_limit",
        "value.concurrency_key",
        "value.concurrency_time_window_s",
        "value.debounce_delay_s",
        "value.debounce_key",
        "value.early_return",
        "timeout",
    }
    assert found["value.concurrent_limit"].message == "'concurrent_limit' has no effect yet"
    assert _errors(document) == {}


def test_problems_carry_file_and_line(tmp_path: Path) -> None:
    document = flow(step("a"), {**step("b", language="nu")})
    path = tmp_path / "f.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    found = by_path(check_supported(load_flow(path).flow))
    assert found["value.modules[1].value.language"].line == line(path, '"language": "nu"')
    assert all(p.file == str(path) for p in found.values())


def test_ai_transforms_are_rejected_at_load_time() -> None:
    module = step("a")
    module["value"]["input_transforms"] = {"prompt": {"type": "ai"}}
    [problem] = _check(flow(module))
    assert problem.severity == "error"
    assert problem.json_path == "value.modules[0].value.input_transforms.prompt"
    assert "'ai' input transforms" in problem.message


def test_a_real_lock_warns_that_dependencies_are_not_installed() -> None:
    module = step("a")
    module["value"]["lock"] = "requests==2.32.0\n"
    [problem] = _check(flow(module))
    assert problem.severity == "warning" and problem.json_path == "value.modules[0].value.lock"
    module["value"]["lock"] = "# py: 3.11\n"
    assert _check(flow(module)) == []


def test_a_typescript_lock_says_imports_are_resolved_when_the_step_runs() -> None:
    module = step("a", language="bun")
    module["value"]["lock"] = '{\n  "lockfileVersion": 0,\n  "packages": {"lodash": ["lodash@4.17.21"]}\n}\n'
    [problem] = _check(flow(module))
    assert problem.severity == "warning" and "imports are resolved when it runs" in problem.message
    assert problem.hint and "pin versions" in problem.hint


def test_while_loops_that_cannot_end_are_reported() -> None:
    empty = {"id": "w", "value": {"type": "whileloopflow", "skip_failures": False, "modules": []}}
    [problem] = _check(flow(empty))
    assert problem.severity == "error" and "never ends" in problem.message
    endless = {"id": "w", "value": {"type": "whileloopflow", "skip_failures": False, "modules": [step("b")]}}
    [problem] = _check(flow(endless))
    assert problem.severity == "warning" and "no stop_after_if" in problem.message


def test_approval_steps_run_where_steps_are_tasks_of_their_own() -> None:
    approval = {
        "required_events": 2,
        "timeout": 60,
        "resume_form": {"schema": {"type": "object"}},
        "self_approval_disabled": True,
        "user_auth_required": True,
        "user_groups_required": {"type": "static", "value": ["ops"]},
        "hide_cancel": True,
        "continue_on_disapprove_timeout": True,
    }
    asking = {**step("b"), "suspend": approval}
    assert _check(flow({**step("a"), "suspend": approval})) == []
    # In the body of a top-level for-loop, branchone or branchall: an approval task per iteration.
    assert _check(flow({"id": "l", "value": {**LOOP, "modules": [asking]}})) == []
    branchone = {"type": "branchone", "branches": [{"expr": "true", "modules": [asking]}], "default": []}
    assert _check(flow({"id": "o", "value": branchone})) == []
    branchall = {"type": "branchall", "parallel": True, "branches": [{"modules": [asking]}]}
    assert _check(flow({"id": "p", "value": branchall})) == []

    # Where the container runs inside one task, the refusal says which container and why.
    retried = {"id": "l", "value": {**LOOP, "modules": [asking]}, "retry": {"constant": {"attempts": 2}}}
    [problem] = _check(flow(retried))
    assert problem.json_path == "value.modules[0].value.modules[0].suspend"
    assert problem.message.startswith(
        "not supported yet: an approval step inside for-loop 'l' (it has a retry"
    )
    nested = {"id": "l", "value": {**LOOP, "modules": [{"id": "o", "value": branchone}]}}
    [problem] = _check(flow(nested))
    assert "inside branchone 'o' (a container nested in another container" in problem.message
    endless = {"id": "w", "value": {"type": "whileloopflow", "skip_failures": False, "modules": [asking]}}
    messages = [p.message for p in _check(flow(endless)) if p.severity == "error"]
    assert messages == [
        "not supported yet: an approval step inside while-loop 'w' (while-loops run in one task): "
        "an Airflow approval task cannot wait inside another task"
    ]
    document = flow(step("a"))
    document["value"]["failure_module"] = {**step("failure"), "suspend": approval}
    [problem] = _check(document)
    assert problem.message.startswith("not supported yet: an approval step in the failure module")
