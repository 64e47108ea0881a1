"""Hub scripts (``hub/<id>/<app>/<name>``) at load time: a vendored copy is inlined, else the step
stays a ``script`` step fetched when it runs; malformed and hostile paths are load errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_openflow.spec import FlowDocumentError, check_supported, load_flow, prepare_flow
from airflow_openflow.spec.hub import hub_path_problem
from airflow_openflow.spec.model import PathScript, RawScript


def repo(tmp_path: Path, script_path: str, vendored: dict[str, str] | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "wmill.yaml").write_text("defaultTs: bun\n")
    for name, text in (vendored or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    folder = tmp_path / "f" / "app" / "main.flow"
    folder.mkdir(parents=True)
    (folder / "flow.yaml").write_text(
        "summary: uses a hub script\nvalue:\n  modules:\n    - id: a\n      value:\n        type: script\n"
        f"        path: {script_path}\n        input_transforms:\n          x: {{type: static, value: 21}}\n"
    )
    return folder


def test_a_hub_script_that_is_not_vendored_loads_and_is_fetched_when_it_runs(tmp_path: Path) -> None:
    flow, problems = prepare_flow(load_flow(repo(tmp_path, "hub/123/slack/send")).flow)
    assert problems == []
    value = flow.value.modules[0].value
    assert isinstance(value, PathScript) and value.path == "hub/123/slack/send"
    assert value.workspace_root == str(tmp_path.resolve())
    assert value.input_transforms["x"].value == 21


@pytest.mark.parametrize(("suffix", "language"), [(".py", "python3"), (".sh", "bash")])
def test_a_vendored_hub_script_is_inlined_with_the_language_of_its_suffix(
    tmp_path: Path, suffix: str, language: str
) -> None:
    vendored = {f"hub/123/demo/double{suffix}": "code", "hub/123/demo/double.script.yaml": "summary: d\n"}
    flow, problems = prepare_flow(load_flow(repo(tmp_path, "hub/123/demo/double", vendored)).flow)
    assert problems == []
    value = flow.value.modules[0].value
    assert isinstance(value, RawScript) and (value.language, value.content) == (language, "code")


def test_a_vendored_hub_script_in_a_language_this_release_does_not_run(tmp_path: Path) -> None:
    folder = repo(tmp_path, "hub/123/demo/ps", {"hub/123/demo/ps.ps1": "param($x)\nWrite-Output $x\n"})
    [problem] = check_supported(load_flow(folder).flow)
    assert "(ps.ps1): language 'powershell' is not supported" in problem.message


def test_a_vendored_copy_is_only_looked_for_inside_the_workspace(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "demo").mkdir(parents=True)
    (outside / "demo" / "double.py").write_text("def main(): return 'outside'")
    workspace = tmp_path / "ws"
    folder = repo(workspace, "hub/123/demo/double")
    (workspace / "hub").mkdir()
    (workspace / "hub" / "123").symlink_to(outside)
    [problem] = check_supported(load_flow(folder).flow)
    assert "cannot be read" in problem.message and "leads outside the workspace" in problem.message


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("hub/../../x", "has an empty, '.' or '..' part"),
        ("hub/1/../../../etc/passwd", "has an empty, '.' or '..' part"),
        ("hub//a/b", "has an empty, '.' or '..' part"),
    ],
)
def test_hostile_hub_paths_are_refused_when_the_flow_loads(tmp_path: Path, path: str, message: str) -> None:
    with pytest.raises(FlowDocumentError, match=message):
        load_flow(repo(tmp_path, path))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("hub/abc/slack/send", "has 'abc' where the hub's script id (a number) belongs"),
        ("hub/12", "is not of the form hub/<id>/<app>/<name>"),
        ("hub/12/a/.env", "has the part '.env'"),
        ("hub/12/a/b c", "has the part 'b c'"),
    ],
)
def test_malformed_hub_paths_are_load_errors(tmp_path: Path, path: str, message: str) -> None:
    [problem] = check_supported(load_flow(repo(tmp_path, path)).flow)
    assert message in problem.message and problem.json_path == "value.modules[0].value.path"
    assert problem.line == 7


def test_hub_path_problem_accepts_windmills_paths() -> None:
    # Windmill's own (frontend/src/lib/hubPaths.json): with or without the app part.
    for path in (
        "hub/9080/slack/schedule-recovery-handler-slack",
        "hub/9087/sync-script-to-git-repo-windmill",
    ):
        assert hub_path_problem(path) is None, path
