"""discover_flows: flow folders and standalone documents, never Windmill metadata."""

from __future__ import annotations

import builtins
import io
from pathlib import Path

import pytest
from spec_helpers import write

from airflow_openflow.spec import discover_flows


def _touch(root: Path, *names: str) -> None:
    for name in names:
        write(root, name, "x: 1\n")


def test_discovers_flows_and_skips_metadata(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        # flows
        "f/examples/etl.flow/flow.yaml",
        "f/examples/etl.flow/a.inline_script.py",
        "f/examples/etl.flow/helper.yaml",  # inside a flow folder: not a flow
        "f/examples/json__flow/flow.json",
        "f/examples/both.flow/flow.yaml",
        "f/examples/both.flow/flow.json",  # one document per folder: flow.yaml wins
        "u/admin/single.flow.json",
        "flows/a.yaml",
        "flows/b.yml",
        "flows/c.json",
        # metadata and other Windmill objects
        "wmill.yaml",
        "wmill-lock.yaml",
        "f/examples/folder.meta.yaml",
        "settings.yaml",
        "f/examples/daily.schedule.yaml",
        "f/examples/hello.script.yaml",
        "f/examples/hello.script.json",
        "f/examples/hello.script.lock",
        "f/examples/db.resource.yaml",
        "f/examples/pg.resource-type.yaml",
        "f/examples/token.variable.yaml",
        "f/examples/ui.app.yaml",
        "f/examples/hook.http_trigger.yaml",
        "f/examples/dash.app/app.yaml",
        "f/examples/empty.flow/readme.yaml",  # a .flow folder without flow.yaml is an ordinary folder
        ".wmill/f/examples/etl.flow/flow.yaml",
        ".git/x.json",
        "f/.hidden/x.yaml",
        "flows/.hidden.yaml",
        "package.json",
        "flows/notes.txt",
    )
    found = [p.relative_to(tmp_path).as_posix() for p in discover_flows(tmp_path)]
    assert found == [
        "f/examples/both.flow/flow.yaml",
        "f/examples/empty.flow/readme.yaml",
        "f/examples/etl.flow/flow.yaml",
        "f/examples/json__flow/flow.json",
        "flows/a.yaml",
        "flows/b.yml",
        "flows/c.json",
        "u/admin/single.flow.json",
    ]


def test_returns_absolute_sorted_paths(tmp_path: Path) -> None:
    _touch(tmp_path, "z.yaml", "a.yaml", "m/b.json")
    found = discover_flows(tmp_path)
    assert found == sorted(found)
    assert all(p.is_absolute() for p in found)
    assert discover_flows(str(tmp_path)) == found


def test_empty_and_missing_folder(tmp_path: Path) -> None:
    assert discover_flows(tmp_path) == []
    assert discover_flows(tmp_path / "missing") == []


def test_files_are_not_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(tmp_path, "f.yaml", "x.flow/flow.yaml")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("discover_flows opened a file")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    monkeypatch.setattr(Path, "read_text", refuse)
    assert discover_flows(tmp_path) == [tmp_path / "f.yaml", tmp_path / "x.flow/flow.yaml"]
