"""``airflow-openflow hub pull``: what it writes, and its errors (a hub on loopback, no DAG run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_openflow.cli import main
from tests.hub_server import fake_hub, unreachable_url

DOUBLE = {"content": "def main(x):\n    return x * 2\n", "language": "python3", "summary": "Double"}


def _flow(root: Path, name: str, *paths: str) -> None:
    (root / "wmill.yaml").write_text("defaultTs: bun\n")
    folder = root / "f" / "app" / f"{name}.flow"
    folder.mkdir(parents=True)
    modules: list[dict[str, Any]] = [
        {"id": f"s{i}", "value": {"type": "script", "path": path, "input_transforms": {}}}
        for i, path in enumerate(paths)
    ]
    (folder / "flow.yaml").write_text(json.dumps({"summary": name, "value": {"modules": modules}}))


def test_a_hub_that_cannot_be_reached(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _flow(tmp_path, "a", "hub/101/demo/double")
    url = unreachable_url()
    assert main(["hub", "pull", str(tmp_path), "--hub-url", url]) == 1
    err = capsys.readouterr().err
    assert f"error: hub/101/demo/double: the hub at {url} cannot be reached" in err
    assert "0 fetched, 0 already vendored, 1 failed" in err
    assert not (tmp_path / "hub").exists()


def test_a_script_the_hub_does_not_have(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _flow(tmp_path, "a", "hub/101/demo/double", "hub/9/nothing/here")
    with fake_hub({"hub/101/demo/double": DOUBLE}) as hub:
        assert main(["hub", "pull", str(tmp_path), "--hub-url", hub.url]) == 1
    captured = capsys.readouterr()
    assert "fetched hub/101/demo/double (python3)" in captured.out
    url = f"{hub.url}/raw2/9/nothing/here"
    missing = f"error: hub/9/nothing/here: the hub has no script 'hub/9/nothing/here' ({url}"
    assert f"{missing} answered 404 Not Found)" in captured.err
    assert "1 fetched, 0 already vendored, 1 failed" in captured.err
    assert (tmp_path / "hub/101/demo/double.py").is_file()


def test_the_hub_url_comes_from_the_airflow_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _flow(tmp_path, "a", "hub/101/demo/double")
    with fake_hub({"hub/101/demo/double": DOUBLE}) as hub:
        monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", hub.url)
        assert main(["hub", "pull", str(tmp_path)]) == 0
        assert hub.requests == ["/raw2/101/demo/double"]
    assert f"from {hub.url} -> hub/101/demo/double.py" in capsys.readouterr().out


def test_metadata_and_lock_are_written_in_the_git_sync_layout(tmp_path: Path) -> None:
    script = {
        **DOUBLE,
        "lockfile": "requests==2.32.3\n",
        "schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
    }
    _flow(tmp_path, "a", "hub/101/demo/double")
    with fake_hub({"hub/101/demo/double": script}) as hub:
        assert main(["hub", "pull", str(tmp_path), "--hub-url", hub.url]) == 0
    folder = tmp_path / "hub" / "101" / "demo"
    assert sorted(p.name for p in folder.iterdir()) == [
        "double.py",
        "double.script.lock",
        "double.script.yaml",
    ]
    assert (folder / "double.script.lock").read_text() == "requests==2.32.3\n"
    metadata = yaml.safe_load((folder / "double.script.yaml").read_text())
    assert metadata["lock"] == "!inline hub/101/demo/double.script.lock"
    assert metadata["schema"] == script["schema"] and metadata["summary"] == "Double"
    assert (folder / "double.py").stat().st_mode & 0o777 == 0o644


def test_nothing_to_pull(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _flow(tmp_path, "a")
    assert main(["hub", "pull", str(tmp_path), "--hub-url", unreachable_url()]) == 0
    assert "no hub scripts are used by the flows under" in capsys.readouterr().out
    assert main(["hub", "pull", str(tmp_path / "missing")]) == 2


def test_malformed_and_hostile_paths_are_refused_and_nothing_leaves_the_workspace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    _flow(root, "a", "hub/abc/demo/double")
    folder = root / "f" / "app" / "b.flow"
    folder.mkdir()
    hostile = {"id": "x", "value": {"type": "script", "path": "hub/../../x", "input_transforms": {}}}
    (folder / "flow.yaml").write_text(json.dumps({"summary": "b", "value": {"modules": [hostile]}}))
    with fake_hub({}) as hub:
        assert main(["hub", "pull", str(root), "--hub-url", hub.url]) == 1
        assert hub.requests == []
    err = capsys.readouterr().err
    assert "error: hub/abc/demo/double: hub script path 'hub/abc/demo/double' has 'abc' where" in err
    assert "b.flow/flow.yaml: not read (" in err and "script path 'hub/../../x' has an empty" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_a_hub_folder_that_leads_outside_the_workspace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    _flow(root, "a", "hub/101/demo/double")
    (root / "hub").symlink_to(outside)
    with fake_hub({"hub/101/demo/double": DOUBLE}) as hub:
        assert main(["hub", "pull", str(root), "--hub-url", hub.url]) == 1
    assert "leads outside the workspace" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


def test_a_language_without_a_git_sync_suffix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _flow(tmp_path, "a", "hub/5/demo/odd")
    with fake_hub({"hub/5/demo/odd": {"content": "x", "language": "cobol"}}) as hub:
        assert main(["hub", "pull", str(tmp_path), "--hub-url", hub.url]) == 1
    assert (
        "the hub gives its language as 'cobol', which is not a Windmill language" in capsys.readouterr().err
    )
