"""``type: script`` steps: found in the git-sync layout, checked at load time, inlined for running."""

from __future__ import annotations

from pathlib import Path

from airflow_openflow.spec import check_supported, load_flow
from airflow_openflow.spec.model import RawScript
from airflow_openflow.spec.scripts import with_scripts_inlined


def repo(tmp_path: Path, script_path: str) -> Path:
    (tmp_path / "f" / "lib").mkdir(parents=True)
    (tmp_path / "f" / "lib" / "double.py").write_text("def main(x):\n    return x * 2\n")
    (tmp_path / "f" / "lib" / "double.script.yaml").write_text("summary: double\n")
    (tmp_path / "f" / "lib" / "hello.sh").write_text('name="$1"\necho "hi $name"\n')
    (tmp_path / "f" / "lib" / "greet.nu").write_text("def main [] { 'hi' }\n")
    folder = tmp_path / "f" / "app" / "main.flow"
    folder.mkdir(parents=True)
    (folder / "flow.yaml").write_text(
        "summary: uses a script\nvalue:\n  modules:\n    - id: a\n      value:\n        type: script\n"
        f"        path: {script_path}\n        input_transforms:\n          x: {{type: static, value: 21}}\n"
    )
    return folder


def test_a_script_by_path_is_found_above_the_flow_and_inlined(tmp_path: Path) -> None:
    flow = load_flow(repo(tmp_path, "f/lib/double")).flow
    assert check_supported(flow) == []
    inlined = with_scripts_inlined(flow).value.modules[0]
    assert isinstance(inlined.value, RawScript)
    assert inlined.value.language == "python3" and "x * 2" in inlined.value.content
    assert inlined.value.input_transforms["x"].value == 21


def test_bash_scripts_take_their_language_from_the_extension(tmp_path: Path) -> None:
    flow = load_flow(repo(tmp_path, "f/lib/hello")).flow
    value = with_scripts_inlined(flow).value.modules[0].value
    assert isinstance(value, RawScript) and value.language == "bash"


def test_missing_unsupported_and_malformed_hub_scripts_are_load_errors(tmp_path: Path) -> None:
    for path, message in [
        ("f/lib/nothing", "script 'f/lib/nothing' not found"),
        ("hub/slack/send", "hub script path 'hub/slack/send' has 'slack' where the hub's script id"),
        ("f/lib/greet", "(greet.nu): language 'nu' is not supported; supported: python3"),
    ]:
        folder = repo(tmp_path / path.replace("/", "_"), path)
        [problem] = check_supported(load_flow(folder).flow)
        assert message in problem.message and problem.json_path == "value.modules[0].value.path"
        assert problem.line == 7 and problem.hint
