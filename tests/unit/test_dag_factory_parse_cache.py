"""load_openflow_dags with the parse cache (``[openflow] parse_cache``): the DAG processor's re-parse
reuses each unchanged flow's load result and the DAG built from it, an edited script (or anything
else the DAG is built from) is in the next parse's DAG, and the cache can be turned off."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import airflow_openflow.compile
from airflow_openflow import kept_dags, load_openflow_dags

FLOW = """\
summary: cached
value:
  modules:
    - id: a
      value:
        type: rawscript
        language: python3
        content: '!inline a.inline_script.py'
        input_transforms: {}
"""


def _flows(root: Path) -> Path:
    folder = root / "flows" / "f" / "app" / "cached.flow"
    folder.mkdir(parents=True)
    (folder / "flow.yaml").write_text(FLOW)
    (folder / "a.inline_script.py").write_text("def main():\n    return 'first'\n")
    return root / "flows"


def _script_of(dags: dict[str, object]) -> str:
    (dag,) = dags.values()
    return str(dag.get_task("a").module.value.content)  # type: ignore[attr-defined]


def test_a_reparse_uses_the_cache_and_sees_an_edited_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("AIRFLOW__OPENFLOW__PARSE_CACHE_DIR", str(cache))
    flows = _flows(tmp_path)
    assert "first" in _script_of(load_openflow_dags(flows))
    entries = sorted(cache.glob("*.pickle"))
    assert len(entries) == 2  # the flow's load result and its DAG
    written = [entry.stat().st_mtime_ns for entry in entries]
    assert "first" in _script_of(load_openflow_dags(flows))
    assert [entry.stat().st_mtime_ns for entry in entries] == written  # used, not written again

    (flows / "f/app/cached.flow/a.inline_script.py").write_text("def main():\n    return 'second'\n")
    assert "second" in _script_of(load_openflow_dags(flows))


def test_the_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("AIRFLOW__OPENFLOW__PARSE_CACHE_DIR", str(cache))
    monkeypatch.setenv("AIRFLOW__OPENFLOW__PARSE_CACHE", "False")
    assert "first" in _script_of(load_openflow_dags(_flows(tmp_path)))
    assert not cache.exists()


def _serialized(dag: Any) -> str:
    from airflow.serialization.serialized_objects import DagSerialization

    return json.dumps(DagSerialization.to_dict(dag), sort_keys=True, default=str)


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    built: list[str] = []
    real = airflow_openflow.compile.build_dag

    def counting(flow: Any, **kwargs: Any) -> Any:
        built.append(kwargs["dag_id"])
        return real(flow, **kwargs)

    monkeypatch.setattr(airflow_openflow.compile, "build_dag", counting)
    return built


WIDE_FLOW = {
    "summary": "every kind of task",
    "schema": {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "who": {"type": "string", "default": "Ada"}},
        "required": ["n"],
    },
    "value": {
        "modules": [
            {
                "id": "loop",
                "value": {
                    "type": "forloopflow",
                    "iterator": {"type": "javascript", "expr": "[1, 2, 3]"},
                    "skip_failures": False,
                    "parallel": True,
                    "parallelism": {"type": "javascript", "expr": "flow_input.n"},
                    "modules": [{"id": "twice", "value": {"type": "identity"}}],
                },
            },
            {
                "id": "pick",
                "value": {
                    "type": "branchone",
                    "branches": [
                        {
                            "expr": "flow_input.n > 1",
                            "modules": [{"id": "big", "value": {"type": "identity"}}],
                        }
                    ],
                    "default": [{"id": "small", "value": {"type": "identity"}}],
                },
            },
            {"id": "child", "value": {"type": "flow", "path": "f/app/child", "input_transforms": {}}},
            {"id": "nap", "sleep": {"type": "static", "value": 1}, "value": {"type": "identity"}},
        ]
    },
}


def test_a_warm_parse_reuses_each_dag_and_it_is_the_dag_a_fresh_build_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loops, a branch, a sub-flow that is a DAG of the same load, a sleep, a required input (whose
    Param holds Airflow's NOTSET), a schedule file: unpickled, the DAG serializes exactly as a
    fresh build does."""
    monkeypatch.setenv("AIRFLOW__OPENFLOW__PARSE_CACHE_DIR", str(tmp_path / "cache"))
    flows = tmp_path / "flows"
    (flows / "f" / "app").mkdir(parents=True)
    (flows / "f/app/wide.flow.json").write_text(json.dumps(WIDE_FLOW))
    (flows / "f/app/child.flow.json").write_text(json.dumps({"summary": "child", "value": {"modules": []}}))
    (flows / "f/app/wide.schedule.yaml").write_text(
        "schedule: 0 0 9 * * *\ntimezone: Europe/Paris\nscript_path: f/app/wide\nis_flow: true\n"
    )
    built = _count_builds(monkeypatch)
    first = load_openflow_dags(flows)
    assert sorted(built) == ["f__app__child", "f__app__wide"]
    again = load_openflow_dags(flows)
    assert sorted(built) == ["f__app__child", "f__app__wide"]  # nothing built again
    assert again["f__app__wide"] is not first["f__app__wide"]
    assert again["f__app__wide"].params["who"] == "Ada"
    for dag_id in first:
        assert _serialized(again[dag_id]) == _serialized(first[dag_id])
    monkeypatch.setenv("AIRFLOW__OPENFLOW__PARSE_CACHE", "False")
    fresh = load_openflow_dags(flows)
    for dag_id in first:
        assert _serialized(again[dag_id]) == _serialized(fresh[dag_id])


def test_what_the_dag_is_built_from_besides_the_flow_builds_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__OPENFLOW__PARSE_CACHE_DIR", str(tmp_path / "cache"))
    flows = tmp_path / "flows"
    (flows / "f" / "app").mkdir(parents=True)
    (flows / "f/app/wide.flow.json").write_text(json.dumps(WIDE_FLOW))
    (flows / "f/app/child.flow.json").write_text(json.dumps({"summary": "child", "value": {"modules": []}}))
    built = _count_builds(monkeypatch)
    assert load_openflow_dags(flows)["f__app__wide"].max_active_runs == 16
    # the DAG keyword arguments
    assert load_openflow_dags(flows, max_active_runs=2)["f__app__wide"].max_active_runs == 2
    assert (
        load_openflow_dags(flows, max_active_runs=2, dag_id_prefix="x_")["x_f__app__wide"].max_active_runs
        == 2
    )
    # a schedule file added
    (flows / "f/app/wide.schedule.yaml").write_text(
        "schedule: 0 0 9 * * *\ntimezone: UTC\nscript_path: f/app/wide\nis_flow: true\n"
    )
    assert type(load_openflow_dags(flows)["f__app__wide"].timetable).__name__ == "CronTriggerTimetable"
    # the sub-flow is no longer a DAG of this load: the step runs it in its own task
    with_child = _serialized(load_openflow_dags(flows)["f__app__wide"])
    (flows / ".airflowignore").write_text("**/child.flow.json\n")
    alone = load_openflow_dags(flows)
    assert set(alone) == {"f__app__wide"}
    assert _serialized(alone["f__app__wide"]) != with_child
    # Airflow's configuration
    kept_dags._build_environment.cache_clear()
    monkeypatch.setenv("AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG", "3")
    try:
        assert load_openflow_dags(flows)["f__app__wide"].max_active_runs == 3
    finally:
        kept_dags._build_environment.cache_clear()
    assert built.count("f__app__wide") == 5 and built.count("x_f__app__wide") == 1


def _on_failure(context: Any) -> None:
    pass


def test_a_dag_whose_arguments_reference_the_dag_file_is_built_in_every_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A callback defined in the DAG file cannot be unpickled while that file is being parsed."""
    monkeypatch.setenv("AIRFLOW__OPENFLOW__PARSE_CACHE_DIR", str(tmp_path / "cache"))
    built = _count_builds(monkeypatch)
    flows = _flows(tmp_path)
    for _ in range(2):
        (dag,) = load_openflow_dags(flows, default_args={"on_failure_callback": _on_failure}).values()
        assert dag.get_task("a").on_failure_callback == [_on_failure]
    assert len(built) == 2
    assert len(list((tmp_path / "cache").glob("*.pickle"))) == 1  # the load result only


def test_a_worker_builds_its_one_dag_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPENFLOW__PARSE_CACHE_DIR", str(tmp_path / "cache"))
    flows = _flows(tmp_path)
    load_openflow_dags(flows)
    built = _count_builds(monkeypatch)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "f__app__cached")
    assert set(load_openflow_dags(flows)) == {"f__app__cached"}
    assert built == ["f__app__cached"]
    assert os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] == "f__app__cached"


def test_one_walk_of_the_folder_finds_the_flows_and_their_schedule_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_openflow.spec import discover, schedules

    flows = _flows(tmp_path)
    (flows / "f/app/cached.schedule.yaml").write_text(
        "schedule: 0 0 9 * * *\ntimezone: UTC\nscript_path: f/app/cached\nis_flow: true\n"
    )
    walks: list[Path] = []
    real = discover.walk_workspace

    def counting(folder: Any, **kwargs: Any) -> Any:
        walks.append(Path(folder))
        return real(folder, **kwargs)

    monkeypatch.setattr(discover, "walk_workspace", counting)
    monkeypatch.setattr(schedules, "walk_workspace", counting)
    (dag,) = load_openflow_dags(flows).values()
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"
    assert walks == [flows]
