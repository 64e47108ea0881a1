"""``type: flow`` steps: the child flow is found in the repository, checked, and run in the task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_openflow.runtime.outcomes import OutcomeKind
from airflow_openflow.runtime.step import run_step
from airflow_openflow.runtime.step_context import StepContextDefaults
from airflow_openflow.spec import check_supported, load_flow
from airflow_openflow.spec.model import PathFlow
from airflow_openflow.spec.subflows import with_subflows_resolved
from tests.flows import py


def write_flow(root: Path, path: str, *modules: dict[str, Any], **value: Any) -> Path:
    folder = root / f"{path}.flow"
    folder.mkdir(parents=True)
    (folder / "flow.json").write_text(
        json.dumps({"summary": path, "value": {"modules": list(modules), **value}})
    )
    return folder


def call(step_id: str, path: str, **transforms: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "value": {
            "type": "flow",
            "path": path,
            "input_transforms": {k: {"type": "javascript", "expr": v} for k, v in transforms.items()},
        },
    }


class Ctx(StepContextDefaults):
    flow_input: dict[str, Any] = {"x": 1}
    flow_env: dict[str, Any] = {"WHO": "parent"}
    is_last_attempt = True

    def previous_result(self) -> Any:
        return None

    def result_of(self, step_id: str) -> Any:
        return {"outer": "secret"}.get(step_id)

    def variable(self, path: str) -> Any:
        return path

    def resource(self, path: str) -> Any:
        return {}


def run_call(root: Path, **transforms: str) -> Any:
    parent = write_flow(root, "f/app/parent", call("c", "f/lib/child", **transforms))
    flow = load_flow(parent, root=root).flow
    assert [p for p in check_supported(flow) if p.severity == "error"] == []
    resolved, problems = with_subflows_resolved(flow)
    assert problems == []
    outcome = run_step(resolved.value.modules[0], Ctx())
    return outcome.kind, outcome.result


def test_the_child_gets_its_args_and_defaults_sees_no_parent_results_and_uses_its_own_env(
    tmp_path: Path,
) -> None:
    write_flow(
        tmp_path,
        "f/lib/child",
        py(
            "a",
            "return [n, d, outer, who]",
            n="flow_input.n",
            d="flow_input.d",
            outer="results.outer",
            who="flow_env.WHO",
        ),
        flow_env={"WHO": "child"},
    )
    child_doc = json.loads((tmp_path / "f/lib/child.flow/flow.json").read_text())
    child_doc["schema"] = {"type": "object", "properties": {"d": {"type": "string", "default": "dflt"}}}
    (tmp_path / "f/lib/child.flow/flow.json").write_text(json.dumps(child_doc))
    assert run_call(tmp_path, n="flow_input.x + 1") == (OutcomeKind.SUCCESS, [2, "dflt", None, "child"])


def test_a_stop_inside_the_child_only_ends_the_child(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        "f/lib/child",
        {**py("a", "return 'early'"), "stop_after_if": {"expr": "true"}},
        py("b", "return 'never'"),
    )
    assert run_call(tmp_path) == (OutcomeKind.SUCCESS, "early")


def test_the_childs_failure_module_handles_its_failure(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        "f/lib/child",
        py("a", "raise ValueError('inner')"),
        failure_module=py("failure", "return {'handled': e['error']['name']}", e="previous_result"),
    )
    assert run_call(tmp_path) == (OutcomeKind.FAILED, {"handled": "ValueError"})


def test_missing_and_recursive_sub_flows_are_load_errors(tmp_path: Path) -> None:
    missing = load_flow(write_flow(tmp_path, "f/app/a", call("c", "f/lib/none")), root=tmp_path).flow
    [problem] = check_supported(missing)
    assert (
        "sub-flow 'f/lib/none' not found" in problem.message
        and problem.json_path == "value.modules[0].value.path"
    )

    write_flow(tmp_path, "f/loop/one", call("c", "f/loop/two"))
    write_flow(tmp_path, "f/loop/two", call("c", "f/loop/one"))
    looped = load_flow(tmp_path / "f/loop/one.flow", root=tmp_path).flow
    assert any("calls itself" in p.message for p in check_supported(looped))


def test_errors_inside_a_sub_flow_are_reported_on_the_calling_step(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        "f/lib/child",
        {"id": "a", "value": {"type": "rawscript", "language": "nu", "content": "x", "input_transforms": {}}},
    )
    parent = load_flow(write_flow(tmp_path, "f/app/p", call("c", "f/lib/child")), root=tmp_path).flow
    [problem] = check_supported(parent)
    assert "sub-flow 'f/lib/child'" in problem.message and "language 'nu'" in problem.message
    resolved, _ = with_subflows_resolved(parent)
    value = resolved.value.modules[0].value
    assert isinstance(value, PathFlow) and value.resolved is not None
