"""discover_flows: flow documents only, from a folder that can be a whole git-sync repository."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from spec_helpers import write

from airflow_openflow.spec import discover, discover_flows, sniff
from airflow_openflow.spec.discover import scan_flows
from airflow_openflow.spec.workspace import MAX_FILE_BYTES

FLOW = "summary: a flow\nvalue:\n  modules:\n    - id: a\n      value: {type: identity}\n"
FLOW_JSON = json.dumps(
    {"summary": "a flow", "value": {"modules": [{"id": "a", "value": {"type": "identity"}}]}}
)


def _touch(root: Path, *names: str, text: str = "x: 1\n") -> None:
    for name in names:
        write(root, name, text)


def _found(root: Path, **kwargs: object) -> list[str]:
    return [p.relative_to(root).as_posix() for p in discover_flows(root, **kwargs)]  # type: ignore[arg-type]


def test_discovers_flows_and_skips_metadata(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "f/examples/etl.flow/flow.yaml",
        "f/examples/json__flow/flow.json",
        "f/examples/both.flow/flow.yaml",
        "f/examples/both.flow/flow.json",  # one document per folder: flow.yaml wins
        "u/admin/single.flow.json",
        "u/admin/other.flow.yaml",
        text=FLOW,
    )
    _touch(tmp_path, "f/examples/etl.flow/helper.yaml", text=FLOW)  # inside a flow folder: not a flow
    _touch(tmp_path, "flows/a.yaml", "flows/b.yml", text=FLOW)
    _touch(tmp_path, "flows/c.json", text=FLOW_JSON)
    _touch(
        tmp_path,
        # Windmill's other objects and metadata: skipped by name, whatever they hold
        "wmill.yaml",
        "wmill-lock.yaml",
        "f/examples/folder.meta.yaml",
        "settings.yaml",
        "f/examples/daily.schedule.yaml",
        "f/examples/hello.script.yaml",
        "f/examples/hello.script.json",
        "f/examples/db.resource.yaml",
        "f/examples/pg.resource-type.yaml",
        "f/examples/c_api.resource_type.yaml",
        "f/examples/token.variable.yaml",
        "f/examples/ui.app.yaml",
        "f/examples/hook.http_trigger.yaml",
        "f/examples/dash.app/app.yaml",
        "f/examples/raw__raw_app/app.yaml",
        ".wmill/f/examples/etl.flow/flow.yaml",
        ".git/x.json",
        "f/.hidden/x.yaml",
        "flows/.hidden.yaml",
        "node_modules/pkg/flow.flow.yaml",
        "package.json",
        text=FLOW,
    )
    _touch(tmp_path, "f/examples/empty.flow/readme.yaml", "flows/notes.txt")  # not OpenFlow: skipped
    assert _found(tmp_path) == [
        "f/examples/both.flow/flow.yaml",
        "f/examples/etl.flow/flow.yaml",
        "f/examples/json__flow/flow.json",
        "flows/a.yaml",
        "flows/b.yml",
        "flows/c.json",
        "u/admin/other.flow.yaml",
        "u/admin/single.flow.json",
    ]


def _real_repository(root: Path) -> None:
    """What real git-sync repositories hold next to their flows."""
    _touch(
        root, "f/etl/daily.flow/flow.yaml", "f/etl/weekly__flow/flow.yaml", "u/ada/one.flow.yaml", text=FLOW
    )
    write(root, "f/etl/daily.flow/a.inline_script.py", "def main():\n    return 1\n")
    write(root, "flow.json", FLOW_JSON)  # a plain OpenFlow document at the root
    write(root, "wmill.yaml", "defaultTs: bun\nincludes: []\n")
    write(root, "docs/mkdocs.yml", "site_name: docs\nnav:\n  - modules: modules.md\n")
    write(root, "docs/openapi.yaml", "openapi: 3.0.0\ninfo: {title: modules, version: '1'}\npaths: {}\n")
    write(
        root,
        "k8s/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: modules}\n"
        "---\napiVersion: v1\nkind: Service\n",
    )
    write(root, "tests/fixtures/rows.json", json.dumps([{"modules": 1}] * 100))
    write(root, "tests/fixtures/odata.json", json.dumps({"@odata.context": "x", "value": [{"modules": 1}]}))
    write(root, "tests/fixtures/config.json", json.dumps({"modules": ["a"], "other": 1}))
    write(root, "grafana/dashboard.json", '{"version": 1, "version": 2, "modules": []}')  # duplicate key
    write(root, "f/rt/c_api.resource_type.yaml", "format_extension: null\nschema: {modules: {}}\n")
    write(root, "f/app/dash.app/app.yaml", FLOW)
    write(root, "f/etl/folder.meta.yaml", "summary: etl\nmodules: x\n")
    write(root, "node_modules/windmill-client/package.json", '{"modules": 1}')
    write(root, "node_modules/windmill-client/flow.yaml", FLOW)
    write(root, "f/etl/rust_gate.rs.yaml", "summary: gate\nlanguage: rust\n")
    write(root, "f/pseudo/flow.yaml", "summary: not openflow\nsteps:\n  - run: x\n")


def test_a_real_repository_gives_its_flows_and_nothing_else(tmp_path: Path) -> None:
    _real_repository(tmp_path)
    assert _found(tmp_path) == [
        "f/etl/daily.flow/flow.yaml",
        "f/etl/weekly__flow/flow.yaml",
        "flow.json",
        "u/ada/one.flow.yaml",
    ]


def test_broken_flows_are_still_found(tmp_path: Path) -> None:
    """A git-sync form, and a document that looks like an OpenFlow attempt, stay flows when broken
    (the loader turns them into the loud placeholder)."""
    write(tmp_path, "f/a/bad_yaml.flow/flow.yaml", "summary: [unclosed\n")
    write(tmp_path, "f/a/two_docs.flow/flow.yaml", FLOW + "---\nmore: 1\n")
    write(tmp_path, "f/a/bad.flow.json", "{not json")
    write(tmp_path, "f/a/empty.flow.yaml", "")
    write(tmp_path, "flows/no_wrapper.yaml", "summary: forgot value\nmodules:\n  - id: a\n")
    write(tmp_path, "flows/schema_no_wrapper.json", json.dumps({"schema": {}, "modules": []}))
    write(tmp_path, "flows/modules_not_list.yaml", "summary: x\nvalue:\n  modules: 3\n")
    write(tmp_path, "flows/syntax_error.yaml", "summary: x\nvalue:\n  modules:\n    - id: [a\n")
    write(tmp_path, "flows/syntax_error.json", '{"summary": "x", "value": {"modules": [}}')
    write(tmp_path, "flows/anchored.yaml", "summary: x\nvalue: &v\n  modules: []\n")
    assert _found(tmp_path) == [
        "f/a/bad.flow.json",
        "f/a/bad_yaml.flow/flow.yaml",
        "f/a/empty.flow.yaml",
        "f/a/two_docs.flow/flow.yaml",
        "flows/anchored.yaml",
        "flows/modules_not_list.yaml",
        "flows/no_wrapper.yaml",
        "flows/schema_no_wrapper.json",
        "flows/syntax_error.json",
        "flows/syntax_error.yaml",
    ]


def test_skipped_files_are_logged_at_debug_with_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _real_repository(tmp_path)
    with caplog.at_level(logging.DEBUG, logger=discover.__name__):
        result = scan_flows(tmp_path)
    reasons = {p.relative_to(tmp_path).as_posix(): why for p, why in result.skipped}
    assert reasons["k8s/deployment.yaml"] == "not an OpenFlow document (no 'value' mapping with 'modules')"
    assert reasons["tests/fixtures/odata.json"].startswith("not an OpenFlow document")
    assert reasons["f/rt/c_api.resource_type.yaml"] == "a Windmill object that is not a flow"
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert any("k8s/deployment.yaml" in r.getMessage() for r in caplog.records)


def test_returns_absolute_sorted_paths(tmp_path: Path) -> None:
    _touch(tmp_path, "z.yaml", "a.yaml", "m/b.yaml", text=FLOW)
    found = discover_flows(tmp_path)
    assert found == sorted(found)
    assert all(p.is_absolute() for p in found)
    assert discover_flows(str(tmp_path)) == found


def test_empty_and_missing_folder(tmp_path: Path) -> None:
    assert discover_flows(tmp_path) == []
    assert discover_flows(tmp_path / "missing") == []


def test_git_sync_forms_are_not_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(tmp_path, "x.flow/flow.yaml", "y.flow.json", "f/z__flow/flow.json")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("discover_flows read a git-sync flow")

    monkeypatch.setattr(sniff, "read_regular_file", refuse)
    assert _found(tmp_path) == ["f/z__flow/flow.json", "x.flow/flow.yaml", "y.flow.json"]


def test_what_cannot_be_a_flow_is_not_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``modules`` in it, a JSON list, over the size limit: decided without a parser."""
    write(tmp_path, "a.yaml", "kind: Deployment\n" * 1000)
    write(tmp_path, "b.json", json.dumps([{"value": {"modules": []}}] * 1000))
    big = tmp_path / "big.yaml"
    with open(big, "wb") as out:
        out.write(b"value:\n  modules: []\n")
        out.truncate(MAX_FILE_BYTES + 1)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(sniff.json, "loads", refuse)
    monkeypatch.setattr(sniff.yaml, "parse", refuse)
    reads: list[str] = []
    real_read = sniff.read_regular_file
    monkeypatch.setattr(sniff, "read_regular_file", lambda p, **k: reads.append(os.fspath(p)) or real_read(p))
    result = scan_flows(tmp_path)
    assert result.flows == []
    assert str(big) not in reads  # over the limit: not even read
    assert dict((p.name, why) for p, why in result.skipped)["big.yaml"].startswith("over the 8 MiB limit")


def test_yaml_is_decided_early_from_parser_events(tmp_path: Path) -> None:
    """The flow's ``value.modules`` decides before the rest of the file is read; hostile shapes
    (deep nesting, alias bombs) after it or instead of it cost nothing."""
    deep = "x: " + "[" * 100_000 + "]" * 100_000 + "\n"
    write(tmp_path, "flow.yaml", FLOW + deep.replace("x:", "extra:"))
    bomb = ["a0: &a0 [modules, modules]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    write(tmp_path, "bomb.yaml", "\n".join(bomb) + "\n")
    write(tmp_path, "deep.yaml", "modules: 1\n" + deep)
    assert _found(tmp_path) == ["flow.yaml"]


def test_a_fifo_is_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "x.yaml")
    os.mkfifo(tmp_path / "y.flow.yaml")
    write(tmp_path, "z.yaml", FLOW)
    assert _found(tmp_path) == ["z.yaml"]


def test_a_link_out_of_the_folder_is_not_read_but_kept_for_the_loader(tmp_path: Path) -> None:
    outside = write(tmp_path, "outside/secret.yaml", "password: modules\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.yaml").symlink_to(outside)
    assert _found(root) == ["link.yaml"]  # the loader refuses it loudly (test_spec_hostile)
