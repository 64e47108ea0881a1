"""load_openflow_dags on a git-sync repository root: one DAG per flow, a placeholder only for a
broken flow, and a flow named on its own reads schedule files only from its own workspace."""

from __future__ import annotations

import json
from pathlib import Path

from airflow_openflow import load_openflow_dags

FLOW = "summary: a flow\nvalue:\n  modules:\n    - id: a\n      value: {type: identity}\n"
SCHEDULE = (
    "schedule: 0 0 9 * * *\ntimezone: UTC\nscript_path: {path}\nis_flow: true\nenabled: true\nargs: {{}}\n"
)


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _repository(root: Path) -> Path:
    _write(root, "wmill.yaml", "defaultTs: bun\nincludes: ['f/**', 'u/**']\nexcludes: ['f/archive/**']\n")
    _write(root, "wmill-lock.yaml", "version: v2\nlocks: {}\n")
    _write(root, "f/etl/daily.flow/flow.yaml", FLOW)
    _write(root, "f/etl/daily.schedule.yaml", SCHEDULE.format(path="f/etl/daily"))
    _write(root, "f/etl/folder.meta.yaml", "summary: etl\ndisplay_name: ETL\n")
    _write(root, "u/ada/plain.yaml", FLOW)  # a plain OpenFlow document
    _write(root, "f/etl/broken.flow/flow.yaml", "summary: [unclosed\n")  # meant as a flow: loud
    _write(root, "f/etl/attempt.yaml", "summary: forgot the value wrapper\nmodules: []\n")  # loud too
    _write(root, "f/archive/old.flow/flow.yaml", FLOW)  # excluded by wmill.yaml
    _write(root, "f/etl/hello.script.yaml", "summary: hi\nlanguage: python3\n")
    _write(root, "f/etl/api.resource_type.yaml", "schema: {modules: 1}\n")
    _write(root, "f/etl/token.variable.yaml", "value: x\n")
    _write(root, "f/etl/hook.http_trigger.yaml", "script_path: f/etl/daily\n")
    _write(root, "f/etl/dash.app/app.yaml", FLOW)
    _write(root, "docs/mkdocs.yml", "site_name: x\nnav: [{modules: m.md}]\n")
    _write(root, "k8s/worker.yaml", "apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: Service\n")
    _write(root, "openapi.yaml", "openapi: 3.0.0\ninfo: {title: modules}\npaths: {}\n")
    _write(root, "f/etl/tests/fixture.json", json.dumps({"value": [{"modules": 1}]}))
    _write(root, "node_modules/windmill-client/flow.yaml", FLOW)
    _write(root, ".wmill/f/etl/daily.flow/flow.yaml", FLOW)
    _write(root, ".airflowignore", "scratch/\n")
    _write(root, "f/scratch/wip.flow/flow.yaml", FLOW)
    return root


def test_a_repository_root_gives_its_flows_and_nothing_else(tmp_path: Path) -> None:
    dags = load_openflow_dags(_repository(tmp_path))
    invalid = sorted(d for d, dag in dags.items() if "openflow-invalid" in dag.tags)
    assert sorted(dags) == ["f__etl__attempt", "f__etl__broken", "f__etl__daily", "u__ada__plain"]
    assert invalid == ["f__etl__attempt", "f__etl__broken"]
    assert dags["f__etl__daily"].timetable.expression == "0 9 * * *"
    assert "invalid YAML" in dags["f__etl__broken"].doc_md


def test_a_flow_named_on_its_own_reads_schedules_of_its_workspace_only(tmp_path: Path) -> None:
    """``render scratch/x.flow`` must not walk all of ``scratch/`` nor fail on what is there."""
    scratch = tmp_path / "scratch"
    _write(scratch, "x.flow/flow.yaml", FLOW)
    _write(scratch, "x.schedule.yaml", SCHEDULE.format(path="x"))  # next to it: its schedule
    _write(scratch, "elsewhere/broken.schedule.yaml", "schedule: [\n")  # unrelated and broken
    _write(scratch, "elsewhere/y.schedule.yaml", SCHEDULE.format(path="x").replace("0 0 9", "0 0 10"))
    dags = load_openflow_dags(scratch / "x.flow", strict=True)
    assert dags["x"].timetable.expression == "0 9 * * *"

    # In a git-sync repository the schedules come from the whole repository, but a broken
    # schedule file of another flow does not fail this one.
    repo = tmp_path / "repo"
    _write(repo, "wmill.yaml", "defaultTs: bun\n")
    _write(repo, "f/a/x.flow/flow.yaml", FLOW)
    _write(repo, "f/schedules/x.schedule.yaml", SCHEDULE.format(path="f/a/x"))
    _write(repo, "f/b/other.schedule.yaml", "schedule: [\n")
    dags = load_openflow_dags(repo / "f/a/x.flow/flow.yaml", strict=True)
    assert dags["x"].timetable.expression == "0 9 * * *"


def test_a_repository_kept_in_a_sub_folder_is_the_workspace_of_its_flows(tmp_path: Path) -> None:
    """``repo/windmill/wmill.yaml``: its flows' scripts are found under ``repo/windmill/`` and their
    dag_ids are their Windmill paths, as when the DAG file points at ``repo/windmill`` itself."""
    repo = tmp_path / "repo"
    _write(repo, "README.md", "# project\n")
    _write(repo, "windmill/wmill.yaml", "defaultTs: bun\n")
    _write(repo, "windmill/f/etl/double.py", "def main(x):\n    return x * 2\n")
    _write(
        repo,
        "windmill/f/etl/run.flow/flow.yaml",
        "summary: run\nvalue:\n  modules:\n    - id: a\n      value:\n        type: script\n"
        "        path: f/etl/double\n        input_transforms: {}\n",
    )
    _write(repo, "f/top.flow/flow.yaml", FLOW)  # outside the nested repository: the searched folder
    dags = load_openflow_dags(repo)
    assert sorted(dags) == ["f__etl__run", "f__top"]
    assert not any("openflow-invalid" in dag.tags for dag in dags.values())
    # The nested repository never widens the workspace: a script above it is not found.
    _write(repo, "f/etl/up.py", "def main():\n    return 1\n")
    _write(
        repo,
        "windmill/f/etl/up.flow/flow.yaml",
        "summary: up\nvalue:\n  modules:\n    - id: a\n"
        "      value: {type: script, path: f/etl/up, input_transforms: {}}\n",
    )
    up = load_openflow_dags(repo)["f__etl__up"]
    assert "openflow-invalid" in up.tags and "f/etl/up" in (up.doc_md or "")
