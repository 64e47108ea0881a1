"""The hub client (runtime/hub.py) against a hub on loopback: download, cache, errors, hostile paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.runtime.hub import (
    DEFAULT_HUB_URL,
    HubError,
    cached_hub_script,
    configured_hub_url,
    fetch_hub_script,
    hub_cache_dir,
    resolve_hub_script,
    script_url,
)
from airflow_openflow.spec.model import InputTransform, PathScript, RawScript
from airflow_openflow.spec.workspace import UnsafePathError
from tests.hub_server import fake_hub, unreachable_url

DOUBLE = {
    "content": "def main(x):\n    return x * 2\n",
    "language": "python3",
    "lockfile": "",
    "schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
    "summary": "Double",
}


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_CACHE_DIR", str(cache))
    return cache


def _step(path: str, root: str | None = "/srv/flows") -> PathScript:
    return PathScript(
        path=path, input_transforms={"x": InputTransform("static", 21)}, workspace_root=root, json_path="v"
    )


def test_defaults_are_windmills_public_hub_and_a_per_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__OPENFLOW__HUB_URL", raising=False)
    monkeypatch.delenv("AIRFLOW__OPENFLOW__HUB_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/tmp/xdg")
    assert configured_hub_url() == DEFAULT_HUB_URL == "https://hub.windmill.dev"
    assert hub_cache_dir() == Path("/tmp/xdg/airflow-openflow/hub")
    monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", "http://hub.internal:8080/")
    assert configured_hub_url() == "http://hub.internal:8080"


def test_the_url_is_the_hubs_raw2_endpoint_and_only_http() -> None:
    assert (
        script_url("https://hub.windmill.dev", "hub/123/slack/send")
        == "https://hub.windmill.dev/raw2/123/slack/send"
    )
    with pytest.raises(HubError, match="not an http"):
        script_url("file:///etc", "hub/1/a/b")


def test_a_script_is_downloaded_then_read_from_the_cache(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_hub({"hub/123/demo/double": DOUBLE}) as hub:
        monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", hub.url)
        first = resolve_hub_script(_step("hub/123/demo/double"), step_id="a")
        second = resolve_hub_script(_step("hub/123/demo/double"), step_id="a")
        assert hub.script_requests("hub/123/demo/double") == 1
    assert isinstance(first, RawScript) and first == second
    assert (first.language, first.content, first.path) == (
        "python3",
        DOUBLE["content"],
        "hub/123/demo/double",
    )
    assert first.input_transforms["x"].value == 21
    cached = json.loads((configured / "hub" / "123" / "demo" / "double.json").read_text())
    assert cached["content"] == DOUBLE["content"] and cached["hub_url"] == hub.url
    script = cached_hub_script("hub/123/demo/double", configured)
    assert script is not None and script.summary == "Double"


def test_an_unreadable_cache_entry_is_downloaded_again(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = configured / "hub" / "123" / "demo" / "double.json"
    entry.parent.mkdir(parents=True)
    entry.write_text("{not json")
    with fake_hub({"hub/123/demo/double": DOUBLE}) as hub:
        monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", hub.url)
        assert resolve_hub_script(_step("hub/123/demo/double"), step_id="a").language == "python3"
        assert hub.script_requests("hub/123/demo/double") == 1
    assert json.loads(entry.read_text())["language"] == "python3"


def test_neither_vendored_nor_reachable_names_both_places(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = unreachable_url()
    monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", url)
    with pytest.raises(StepError) as caught:
        resolve_hub_script(_step("hub/123/demo/double"), step_id="a")
    error = caught.value.error["error"]
    assert error["name"] == "HubScriptUnavailable" and error["step_id"] == "a"
    assert "no file /srv/flows/hub/123/demo/double.<ext>" in error["message"]
    assert f"from the hub {url}: the hub at {url} cannot be reached" in error["message"]
    assert "airflow-openflow hub pull" in error["message"]
    assert (error["path"], error["hub_url"]) == ("hub/123/demo/double", url)


def test_a_script_the_hub_does_not_have(configured: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_hub({}) as hub:
        monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", hub.url)
        with pytest.raises(StepError, match=r"the hub has no script 'hub/9/x/y' \(.* answered 404"):
            resolve_hub_script(_step("hub/9/x/y", root=None), step_id="a")
        with pytest.raises(StepError, match="flow has no workspace folder"):
            resolve_hub_script(_step("hub/9/x/y", root=None), step_id="a")


@pytest.mark.parametrize("answer", [b"[1]", b'{"content": "x"}', b"<html>", b"\xff"])
def test_answers_that_are_not_scripts(answer: bytes) -> None:
    with (
        fake_hub({}, raw={"hub/1/a/b": answer}) as hub,
        pytest.raises(HubError, match="did not answer a hub script"),
    ):
        fetch_hub_script("hub/1/a/b", hub.url)


def test_a_language_this_release_does_not_run_fails_the_step(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not deno/bun: TypeScript runners are coming (issue 10); PHP is not.
    script = {"content": "<?php function main() { return 1; }", "language": "php"}
    with fake_hub({"hub/5/demo/ts": script, "hub/6/demo/odd": {**script, "language": "cobol"}}) as hub:
        monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", hub.url)
        with pytest.raises(
            StepError, match=r"hub script 'hub/5/demo/ts': language 'php' is not supported"
        ) as caught:
            resolve_hub_script(_step("hub/5/demo/ts"), step_id="a")
        assert caught.value.name == "NotSupported"
        with pytest.raises(StepError, match=r"language 'cobol' \(not a Windmill language\) is not supported"):
            resolve_hub_script(_step("hub/6/demo/odd"), step_id="a")


@pytest.mark.parametrize(
    "path", ["hub/../../x", "hub/1/../../../etc/passwd", "hub/1/a/.hidden", "hub/x/a/b", "hub/1", "hub//a/b"]
)
def test_hostile_hub_paths_never_reach_the_hub_nor_the_disk(
    path: str, configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_hub({}) as hub:
        monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", hub.url)
        with pytest.raises(StepError, match="hub script path"):
            resolve_hub_script(_step(path), step_id="a")
        with pytest.raises(UnsafePathError):
            script_url(hub.url, path)
        assert cached_hub_script(path, configured) is None
        assert hub.requests == []
    assert not configured.exists()


def test_a_hub_script_in_a_loop_run_inside_a_task_is_fetched_once(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_step_semantics import FakeRun

    from airflow_openflow.runtime.outcomes import OutcomeKind
    from airflow_openflow.runtime.step import run_step
    from airflow_openflow.spec import load_flow

    step = {
        "id": "a",
        "value": {
            "type": "script",
            "path": "hub/123/demo/double",
            "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.iter.value"}},
        },
    }
    loop = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "static", "value": [1, 2, 3]},
            "modules": [step],
        },
    }
    module = load_flow({"summary": "t", "value": {"modules": [loop]}}).flow.value.modules[0]
    with fake_hub({"hub/123/demo/double": DOUBLE}) as hub:
        monkeypatch.setenv("AIRFLOW__OPENFLOW__HUB_URL", hub.url)
        outcome = run_step(module, FakeRun())
        assert (outcome.kind, outcome.result) == (OutcomeKind.SUCCESS, [2, 4, 6])
        assert hub.script_requests("hub/123/demo/double") == 1
