"""Windmill Hub scripts through real DAG runs (``run_flow``), against a hub on loopback started here:
fetched when the step runs and cached, vendored by ``airflow-openflow hub pull``, and the errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import airflow_openflow
from airflow_openflow import FlowDocumentError
from airflow_openflow.cli import main
from airflow_openflow.spec import load_flow, prepare_flow
from tests.hub_server import fake_hub, unreachable_url

SCRIPTS: dict[str, dict[str, Any]] = {
    "hub/101/demo/double": {
        "content": "def main(x: int):\n    return x * 2\n",
        "language": "python3",
        "lockfile": "",
        "schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "summary": "Double a number",
    },
    "hub/102/demo/greet": {
        "content": 'name="$1"\necho "hello $name"\n',
        "language": "bash",
        "lockfile": None,
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
        "summary": "Greet",
    },
    # A language this release does not run (Windmill's hub has PowerShell scripts).
    "hub/103/demo/ps": {"content": "param($x)\nWrite-Output $x\n", "language": "powershell", "summary": "ps"},
}


def _step(step_id: str, path: str, **transforms: Any) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "script", "path": path, "input_transforms": transforms}}


def _collect(*ids: str) -> dict[str, Any]:
    return {
        "id": "collect",
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": f"def main({', '.join(ids)}):\n    return [{', '.join(ids)}]\n",
            "input_transforms": {i: {"type": "javascript", "expr": f"results.{i}"} for i in ids},
        },
    }


def _repo(root: Path, *modules: dict[str, Any]) -> Path:
    """A git-sync repository holding one flow, ``f/app/hub.flow``; returns the flow folder."""
    root.mkdir(parents=True)
    (root / "wmill.yaml").write_text("defaultTs: bun\n")
    folder = root / "f" / "app" / "hub.flow"
    folder.mkdir(parents=True)
    (folder / "flow.yaml").write_text(
        json.dumps({"summary": "hub scripts", "value": {"modules": list(modules)}})
    )
    return folder


def _double_and_greet(root: Path) -> Path:
    return _repo(
        root,
        _step("a", "hub/101/demo/double", x={"type": "javascript", "expr": "flow_input.x"}),
        _step("b", "hub/102/demo/greet", name={"type": "static", "value": "ada"}),
        _collect("a", "b"),
    )


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    # The task processes inherit the environment: the executor's workers start with each run.
    folder = tmp_path / "hub-cache"
    monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_CACHE_DIR", str(folder))
    return folder


def test_hub_scripts_are_fetched_when_they_run_then_come_from_the_cache(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ps = _step("c", "hub/103/demo/ps")
    ps["continue_on_error"] = True
    flow = _repo(
        tmp_path / "repo",
        _step("a", "hub/101/demo/double", x={"type": "javascript", "expr": "flow_input.x"}),
        _step("b", "hub/102/demo/greet", name={"type": "static", "value": "ada"}),
        ps,
        _collect("a", "b", "c"),
    )
    with fake_hub(SCRIPTS) as hub:
        monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", hub.url)
        _, problems = prepare_flow(load_flow(flow).flow)
        assert problems == [] and hub.requests == []  # loading never asks the hub
        first = airflow_openflow.run_flow(flow, {"x": 21})
        assert first.status == "success", first.result
        a, b, c = first.result
        assert (a, b) == (42, "hello ada")
        assert c["error"]["name"] == "NotSupported" and c["error"]["step_id"] == "c"
        assert (
            "hub script 'hub/103/demo/ps': language 'powershell' is not supported; supported: "
            in (c["error"]["message"])
        )
        counts = {path: hub.script_requests(path) for path in SCRIPTS}
        assert counts == dict.fromkeys(SCRIPTS, 1), hub.requests
        assert sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*.json")) == [
            "hub/101/demo/double.json",
            "hub/102/demo/greet.json",
            "hub/103/demo/ps.json",
        ]

        second = airflow_openflow.run_flow(flow, {"x": 5})
        assert second.status == "success", second.result
        assert second.result[:2] == [10, "hello ada"]
        assert len(hub.requests) == 3, hub.requests  # the second run asked the hub nothing


def test_neither_vendored_nor_reachable_fails_the_step_naming_both_places(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    flow = _repo(root, _step("a", "hub/101/demo/double", x={"type": "static", "value": 1}))
    url = unreachable_url()
    monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", url)
    outcome = airflow_openflow.run_flow(flow, {})
    assert outcome.status == "failure"
    error = outcome.result["error"]
    assert error["name"] == "HubScriptUnavailable" and error["step_id"] == "a"
    vendored = f"{root.resolve()}/hub/101/demo/double.<ext>"
    assert f"hub script 'hub/101/demo/double' is not vendored (no file {vendored})" in error["message"]
    assert (
        f"could not be downloaded from the hub {url}: the hub at {url} cannot be reached" in error["message"]
    )
    assert not cache.exists()


def test_hub_pull_vendors_the_scripts_and_the_flow_then_runs_without_the_hub(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo"
    flow = _double_and_greet(root)
    with fake_hub(SCRIPTS) as hub:
        assert main(["hub", "pull", str(root), "--hub-url", hub.url]) == 0
        out = capsys.readouterr().out
        assert f"fetched hub/101/demo/double (python3) from {hub.url} -> hub/101/demo/double.py" in out
        assert f"fetched hub/102/demo/greet (bash) from {hub.url} -> hub/102/demo/greet.sh" in out
        assert "2 fetched, 0 already vendored, 0 failed" in out
        assert len(hub.requests) == 2

        # Idempotent: nothing is asked again, nothing changes.
        before = {p: p.read_bytes() for p in (root / "hub").rglob("*") if p.is_file()}
        assert main(["hub", "pull", str(root), "--hub-url", hub.url]) == 0
        out = capsys.readouterr().out
        assert "already vendored: hub/101/demo/double (hub/101/demo/double.py)" in out
        assert "0 fetched, 2 already vendored, 0 failed" in out
        assert len(hub.requests) == 2
        assert {p: p.read_bytes() for p in (root / "hub").rglob("*") if p.is_file()} == before

    assert (root / "hub/101/demo/double.py").read_text() == SCRIPTS["hub/101/demo/double"]["content"]
    assert (root / "hub/102/demo/greet.sh").read_text() == SCRIPTS["hub/102/demo/greet"]["content"]
    metadata = (root / "hub/101/demo/double.script.yaml").read_text()
    assert "summary: Double a number" in metadata and "Vendored from the Windmill Hub" in metadata

    # The workers have no hub: the flow runs from the vendored copies, inlined when it loads.
    monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", unreachable_url())
    outcome = airflow_openflow.run_flow(flow, {"x": 4})
    assert (outcome.status, outcome.result) == ("success", [8, "hello ada"]), outcome.result
    assert not cache.exists()


def test_a_hostile_hub_path_is_refused_before_anything_runs(tmp_path: Path, cache: Path) -> None:
    flow = _repo(tmp_path / "repo", _step("a", "hub/../../x"))
    with fake_hub(SCRIPTS) as hub:
        with pytest.raises(
            FlowDocumentError, match=r"script path 'hub/../../x' has an empty, '.' or '..' part"
        ):
            airflow_openflow.run_flow(flow, {})
        assert hub.requests == []
