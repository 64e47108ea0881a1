"""Settings that parse but mean nothing where they are: load-time errors with file, line, path, hint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from spec_helpers import by_path, errors, flow, line, step, write

from airflow_openflow.spec import load_flow

LOOP: dict[str, Any] = {"type": "forloopflow", "iterator": {"type": "static", "value": [1]}, "modules": []}


def test_negative_required_events(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "flow.yaml",
        """
        summary: s
        value:
          modules:
            - id: a
              value: {type: identity}
              suspend: {required_events: -1}
        """,
    )
    [problem] = errors(path)
    assert problem.json_path == "value.modules[0].suspend.required_events"
    assert problem.line == line(path, "required_events")
    assert problem.message == "suspend.required_events must be 1 or more (0 turns the approval off), got -1"
    assert problem.hint


def test_zero_required_events_is_windmills_suspend_off() -> None:
    # Windmill's engine suspends only for a non-zero count; its editor may leave {required_events: 0}.
    assert errors(flow({**step("a"), "suspend": {"required_events": 0}})) == []


@pytest.mark.parametrize(
    "value",
    [
        step("x")["value"],
        {"type": "identity"},
        {"type": "branchone", "branches": [], "default": []},
        {"type": "flow", "path": "f/x/y", "input_transforms": {}},
    ],
)
def test_stop_after_all_iters_if_outside_loops(value: dict[str, Any]) -> None:
    module = {"id": "a", "value": value, "stop_after_all_iters_if": {"expr": "true"}}
    [problem] = errors(flow(module))
    assert problem.json_path == "value.modules[0].stop_after_all_iters_if"
    assert problem.message.startswith(f"stop_after_all_iters_if on a {value['type']} step means nothing")
    assert problem.hint == "use stop_after_if on this step"


@pytest.mark.parametrize(
    "value",
    [
        LOOP,
        {"type": "whileloopflow", "modules": [step("b")]},
        {"type": "branchall", "branches": []},
    ],
)
def test_stop_after_all_iters_if_on_loops_and_branchall(value: dict[str, Any]) -> None:
    assert errors(flow({"id": "a", "value": value, "stop_after_all_iters_if": {"expr": "true"}})) == []


@pytest.mark.parametrize(
    "value",
    [
        LOOP,
        {"type": "whileloopflow", "modules": []},
        {"type": "branchone", "branches": [], "default": []},
        {"type": "branchall", "branches": []},
        {"type": "identity"},
    ],
)
def test_the_preprocessor_must_be_a_script(value: dict[str, Any]) -> None:
    document = flow(step("a"), preprocessor_module={"id": "preprocessor", "value": value})
    [problem] = errors(document)
    assert problem.json_path == "value.preprocessor_module.value.type"
    assert problem.message == f"the preprocessor must be a script step, not a {value['type']}"
    assert problem.hint and "rawscript" in problem.hint


def test_a_script_preprocessor_loads() -> None:
    by_path_script = {
        "id": "preprocessor",
        "value": {"type": "script", "path": "f/x/pre", "input_transforms": {}},
    }
    assert errors(flow(step("a"), preprocessor_module=step("preprocessor"))) == []
    assert errors(flow(step("a"), preprocessor_module=by_path_script)) == []


@pytest.mark.parametrize("path", ["", "/", ".", "..", "f/../x", "f//x"])
@pytest.mark.parametrize("kind", ["script", "flow"])
def test_paths_that_name_nothing(kind: str, path: str, tmp_path: Path) -> None:
    document = flow({"id": "a", "value": {"type": kind, "path": path, "input_transforms": {}}})
    found = by_path(errors(document))
    assert set(found) == {"value.modules[0].value.path"}
    problem = found["value.modules[0].value.path"]
    assert problem.message.startswith(f"{kind} path {path!r} ")
    assert problem.hint == f"write the {kind}'s workspace path, e.g. f/<folder>/<name>"


def test_a_script_path_of_slash_in_a_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "flow.yaml",
        """
        summary: s
        value:
          modules:
            - id: a
              value: {type: script, path: "/", input_transforms: {}}
        """,
    )
    [problem] = errors(path)
    assert (problem.file, problem.line) == (str(path), line(path, 'path: "/"'))
    with pytest.raises(ValueError, match="names nothing"):
        load_flow(path)
