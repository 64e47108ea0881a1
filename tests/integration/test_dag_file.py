"""The DAG file users copy: a folder of flows becomes DAGs, as Airflow's own DagBag parses it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO

GOOD = {
    "summary": "good",
    "value": {
        "modules": [
            {
                "id": "a",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": "def main():\n    return 1\n",
                    "input_transforms": {},
                },
            }
        ]
    },
}


def _dags_folder(tmp_path: Path) -> Path:
    dags = tmp_path / "dags"
    flows = dags / "flows"
    (flows / "team").mkdir(parents=True)
    (flows / "first.json").write_text(json.dumps(GOOD))
    (flows / "team" / "second.yaml").write_text("summary: second\nvalue:\n  modules: []\n")
    # Line 5 holds the duplicate id.
    (flows / "broken.yaml").write_text(
        "summary: broken\nvalue:\n  modules:\n    - {id: a, value: {type: identity}}\n"
        "    - {id: a, value: {type: identity}}\n"
    )
    # An inline script that mentions "airflow" and "dag" must not be imported as a DAG file.
    folder = flows / "f" / "etl.flow"
    folder.mkdir(parents=True)
    (folder / "flow.yaml").write_text(
        "summary: etl\nvalue:\n  modules:\n    - id: a\n      value:\n        type: rawscript\n"
        "        language: python3\n        content: '!inline a.py'\n        input_transforms: {}\n"
    )
    (folder / "a.py").write_text("raise RuntimeError('an airflow dag script imported at parse time')\n")
    (dags / "openflow_dags.py").write_text((REPO / "dags" / "openflow_dags.py").read_text())
    (dags / ".airflowignore").write_text((REPO / "dags" / ".airflowignore").read_text())
    return dags


def test_one_broken_flow_does_not_hide_the_others(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(_dags_folder(tmp_path)))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["broken", "f__etl", "first", "team__second"]
    assert bag.dags["first"].task_ids == ["a", "flow_result"]
    assert "openflow" in bag.dags["first"].tags

    broken = bag.dags["broken"]
    assert "openflow-invalid" in broken.tags
    assert broken.task_ids == ["invalid_flow_document"]
    doc = broken.doc_md
    assert "broken.yaml:5" in doc and "value.modules[1].id" in doc and "duplicate" in doc.lower()


def test_in_a_worker_only_the_dag_being_run_is_built(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from airflow_openflow import load_openflow_dags

    flows = _dags_folder(tmp_path) / "flows"
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "first")
    dags = load_openflow_dags(flows)
    assert list(dags) == ["first"]


def test_a_sub_flow_that_is_a_dag_of_the_same_folder_runs_as_a_run_of_that_dag(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from airflow_openflow import load_openflow_dags

    flows = _dags_folder(tmp_path) / "flows"
    call = {"id": "call", "value": {"type": "flow", "path": "team/second", "input_transforms": {}}}
    nested = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "static", "value": [1]},
            "skip_failures": False,
            "modules": [{**call, "id": "inner_call"}],
        },
    }
    caller_document = {"summary": "caller", "value": {"modules": [call, nested]}}
    (flows / "caller.json").write_text(json.dumps(caller_document))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "caller")  # also in a worker building one DAG
    caller = load_openflow_dags(flows, strict=True)["caller"]
    step = caller.get_task("call")
    assert type(step).__name__ == "SubFlowRunOperator" and step.trigger_dag_id == "team__second"
    assert step.child_result_task_id == "flow_result"
    # Nested in a loop body, the child runs inside the iteration's task.
    assert type(caller.get_task("loop_iterations.inner_call")).__name__ == "BodyStepOperator"


def test_an_approval_in_a_sub_flow_needs_the_child_to_run_as_a_dag_of_its_own(tmp_path: Path) -> None:
    """Issue 14: the child of a top-level sub-flow step may ask for approval when it runs as a DAG
    of its own (both flows in one load); otherwise the caller is refused, saying why."""
    import pytest

    from airflow_openflow import load_openflow_dags
    from airflow_openflow.spec import FlowDocumentError

    flows = tmp_path / "flows"
    (flows / "team").mkdir(parents=True)
    asking = {"id": "a", "value": {"type": "identity"}, "suspend": {"required_events": 1, "timeout": 60}}
    (flows / "team" / "child.json").write_text(
        json.dumps({"summary": "child", "value": {"modules": [asking]}})
    )
    call = {"id": "call", "value": {"type": "flow", "path": "team/child", "input_transforms": {}}}
    (flows / "caller.json").write_text(json.dumps({"summary": "caller", "value": {"modules": [call]}}))
    dags = load_openflow_dags(flows, strict=True)
    assert type(dags["caller"].get_task("call")).__name__ == "SubFlowRunOperator"
    assert "a_approval" in dags["team__child"].task_dict  # the child run waits for its approval

    with pytest.raises(FlowDocumentError) as refused:  # named on its own: the child is no DAG of it
        load_openflow_dags(flows / "caller.json", strict=True)
    problem = refused.value.problems[0]
    assert problem.json_path == "value.modules[0].value.path" and problem.line is not None
    assert problem.message == (
        "not supported: sub-flow 'team/child' has an approval step ('a'), which cannot wait inside this "
        "step's task: the sub-flow's file is not a flow of this DAG file's load, so it is no DAG of its own"
    )

    # A sub-flow step in a loop body runs its child inside its own task: refused when loaded.
    loop = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "static", "value": [1]},
            "skip_failures": False,
        },
    }
    loop["value"]["modules"] = [call]
    (flows / "caller.json").write_text(json.dumps({"summary": "caller", "value": {"modules": [loop]}}))
    with pytest.raises(FlowDocumentError) as refused:
        load_openflow_dags(flows, strict=True)
    assert (
        "not supported yet: an approval step in sub-flow 'team/child', which runs inside the task of its step"
        in str(refused.value)
    )
