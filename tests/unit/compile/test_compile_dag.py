"""compile/: the DAG a flow becomes (no database, no run)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_openflow.compile import build_dag, dag_id_for_document, dag_id_for_path
from airflow_openflow.compile.naming import result_task_id
from airflow_openflow.compile.params import params_from_schema
from airflow_openflow.spec import load_flow


def step(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "identity"}, **extra}


def test_one_task_per_step_chained_then_flow_result() -> None:
    flow = load_flow(
        {"summary": "S", "description": "D", "value": {"modules": [step("a"), step("b"), step("c")]}}
    ).flow
    dag = build_dag(flow, dag_id="x")
    assert [t.task_id for t in dag.topological_sort()] == ["a", "b", "c", "flow_result"]
    rules = {t.task_id: getattr(t.trigger_rule, "value", t.trigger_rule) for t in dag.tasks}
    assert rules == {"a": "all_success", "b": "none_failed", "c": "none_failed", "flow_result": "all_done"}
    assert dag.task_dict["c"].upstream_task_ids == {"b"}
    assert dag.task_dict["a"].plan.later_task_ids == ("b", "c")
    assert dag.task_dict["c"].plan.visible_step_ids == {"a", "b"}
    assert dag.task_dict["a"].plan.previous_step_id is None
    assert "openflow" in dag.tags and dag.schedule is None
    assert "# S" in dag.doc_md and "D" in dag.doc_md


def test_step_named_flow_result_moves_the_final_task() -> None:
    assert result_task_id(["a", "flow_result"]) == "flow_result_"
    flow = load_flow({"summary": "S", "value": {"modules": [step("flow_result")]}}).flow
    assert build_dag(flow, dag_id="x").task_ids == ["flow_result", "flow_result_"]


@pytest.mark.parametrize(
    ("path", "dag_id"),
    [("f/examples/etl", "f__examples__etl"), ("u/ada/my flow!", "u__ada__my_flow_"), ("hello", "hello")],
)
def test_dag_id_from_workspace_path(path: str, dag_id: str) -> None:
    assert dag_id_for_path(path) == dag_id


def test_dag_id_for_a_document_without_path_is_stable_and_valid() -> None:
    assert dag_id_for_document("My Flow: v2", "ab" * 32) == "openflow_my_flow_v2_ababababab"
    assert len(dag_id_for_path("x/" * 200)) <= 250


def test_params_follow_the_schema() -> None:
    params = params_from_schema(
        {
            "type": "object",
            "required": ["name", "count"],
            "properties": {
                "name": {"type": "string", "description": "who"},
                "count": {"type": "integer", "default": 3, "minimum": 1},
                "note": {"type": "string"},
                "mode": {"type": "string", "enum": ["a", "b"], "default": None},
                "token": {"type": "string", "password": True, "default": ""},
            },
        }
    )
    assert params["count"].value == 3 and params["count"].schema["minimum"] == 1
    assert params["note"].value is None and params["note"].schema["type"] == ["string", "null"]
    assert params["mode"].schema["enum"] == ["a", "b", None]
    assert params["token"].schema["format"] == "password"
    assert params["name"].description == "who"
    assert not params["name"].has_value  # required, no default: must be given when triggering


def test_a_default_that_breaks_its_schema_is_kept_and_the_input_left_unchecked() -> None:
    """As in Windmill, which runs with the default; Airflow would otherwise refuse every run."""
    schema = {
        "type": "object",
        "properties": {
            "table": {"type": "string", "pattern": "^.{1,53}$", "default": "", "title": "Table"},
            "n": {"type": "integer", "default": 2, "maximum": 5},
        },
    }
    params = params_from_schema(schema)
    assert params["table"].value == "" and "pattern" not in params["table"].schema
    params["table"].resolve("")  # what a run that does not give the input resolves: no error
    assert params["n"].schema["maximum"] == 5
    flow = load_flow({"summary": "S", "schema": schema, "value": {"modules": [step("a")]}}).flow
    build_dag(flow, dag_id="defaults").validate()  # the DAG builds and passes Airflow's checks


def test_dag_settings_from_the_dag_file_merge_with_ours() -> None:
    flow = load_flow({"summary": "S", "value": {"modules": [step("a")]}}).flow
    dag = build_dag(
        flow, dag_id="x", tags=["team"], default_args={"owner": "data", "retries": 2}, max_active_runs=3
    )
    assert set(dag.tags) == {"openflow", "team"} and dag.max_active_runs == 3
    assert dag.default_args["owner"] == "data" and dag.task_dict["a"].retries == 2


def test_skip_expr_becomes_a_first_gate_step() -> None:
    flow = load_flow(
        {"summary": "S", "value": {"skip_expr": "flow_input.quiet", "modules": [step("a")]}}
    ).flow
    dag = build_dag(flow, dag_id="x")
    assert [t.task_id for t in dag.topological_sort()] == ["skip_expr", "a", "flow_result"]
    gate = dag.task_dict["skip_expr"].module
    assert gate.stop_after_if.expr == "flow_input.quiet" and gate.stop_after_if.skip_if_stopped


def test_failure_module_waits_for_every_step_with_one_failed() -> None:
    flow = load_flow(
        {"summary": "S", "value": {"modules": [step("a"), step("b")], "failure_module": step("failure")}}
    ).flow
    dag = build_dag(flow, dag_id="x")
    handler = dag.task_dict["failure"]
    assert handler.upstream_task_ids == {"a", "b"}
    assert getattr(handler.trigger_rule, "value", handler.trigger_rule) == "one_failed"
    assert dag.task_dict["flow_result"].upstream_task_ids == {"b", "failure"}
    assert handler.plan.handles_failure_of == ("a", "b")


def test_retry_maps_to_airflow_retries_with_windmill_delays() -> None:
    retry = {
        "constant": {"attempts": 2, "seconds": 3},
        "exponential": {"attempts": 2, "multiplier": 1, "seconds": 2},
    }
    flow = load_flow({"summary": "S", "value": {"modules": [step("a", retry=retry)]}}).flow
    task = build_dag(flow, dag_id="x").task_dict["a"]
    assert task.retries == 4
    delays = [
        task.retry_policy.evaluate(RuntimeError(), try_number, 5).retry_delay.total_seconds()
        for try_number in (1, 2, 3, 4)
    ]
    assert delays == [3, 3, 8, 16]  # constant first, then multiplier * seconds ** (k + 1)


def test_sleep_adds_a_wait_task_and_stops_skip_everything_after() -> None:
    flow = load_flow(
        {"summary": "S", "value": {"modules": [step("a", sleep={"type": "static", "value": 5}), step("b")]}}
    ).flow
    dag = build_dag(flow, dag_id="x")
    assert [t.task_id for t in dag.topological_sort()] == ["a", "a_sleep", "b", "flow_result"]
    assert dag.task_dict["b"].plan.previous_step_id == "a"  # the step's result, not the sleep's
    assert dag.task_dict["a"].plan.later_task_ids == ("a_sleep", "b")
    assert dag.task_dict["flow_result"].step_ids == ["a", "b"]


def test_parallel_loops_and_branchall_run_on_tasks() -> None:
    body = [step("b1"), step("b2")]
    loop = {
        "id": "l",
        "value": {
            "type": "forloopflow",
            "parallel": True,
            "skip_failures": False,
            "iterator": {"type": "javascript", "expr": "[1, 2]"},
            "modules": body,
        },
    }
    branches = {
        "id": "ba",
        "value": {
            "type": "branchall",
            "branches": [{"modules": [step("x")]}, {"modules": [step("y"), step("z")]}],
        },
    }
    flow = load_flow({"summary": "S", "value": {"modules": [loop, branches]}}).flow
    dag = build_dag(flow, dag_id="x")
    assert dag.task_dict["l_iterations.b2"].upstream_task_ids == {"l_items", "l_iterations.b1"}
    assert dag.task_dict["l"].upstream_task_ids == {"l_items", "l_iterations.b2"}
    assert dag.task_dict["ba_branch_0.x"].upstream_task_ids == {"l"}
    assert dag.task_dict["ba"].upstream_task_ids == {"ba_branch_0.x", "ba_branch_1.z", "l"}
    assert dag.task_dict["flow_result"].step_ids == ["l", "ba"]
    sequential = {
        "id": "s",
        "value": {"type": "branchall", "parallel": False, "branches": [{"modules": [step("q")]}]},
    }
    flow = load_flow({"summary": "S", "value": {"modules": [sequential]}}).flow
    assert sorted(build_dag(flow, dag_id="x").task_ids) == ["flow_result", "s", "s_branch_0.q"]


@pytest.mark.parametrize(
    ("parallelism", "steps", "gated"),
    [
        ({"type": "static", "value": 2}, 1, False),  # max_active_tis_per_dagrun is the cap
        ({"type": "static", "value": 2}, 2, True),  # a per-step cap would not cap iterations
        ({"type": "javascript", "expr": "1 + 1"}, 1, True),
        (None, 2, False),
    ],
)
def test_a_parallel_loops_parallelism_caps_iterations(parallelism: Any, steps: int, gated: bool) -> None:
    """Static: the body steps get ``max_active_tis_per_dagrun``; an expression, or a body of
    several steps: the first step starts in the triggerer, waiting for the iteration
    ``parallelism`` earlier, and is not capped (its deferred instances would hold the cap)."""
    value: dict[str, Any] = {
        "type": "forloopflow",
        "parallel": True,
        "iterator": {"type": "javascript", "expr": "[1, 2, 3]"},
        "modules": [step(f"b{i}") for i in range(steps)],
    }
    if parallelism is not None:
        value["parallelism"] = parallelism
    flow = load_flow({"summary": "S", "value": {"modules": [{"id": "l", "value": value}]}}).flow
    dag = build_dag(flow, dag_id="x")
    first = dag.task_dict["l_iterations.b0"]
    assert (first.loop_gate is not None) is gated
    assert first.start_from_trigger is gated
    static = parallelism is not None and parallelism["type"] == "static"
    limits = [dag.task_dict[f"l_iterations.b{i}"].max_active_tis_per_dagrun for i in range(steps)]
    assert limits == [None if gated else 2 if static else None] + [2 if static else None] * (steps - 1)


def test_a_sequential_loops_first_step_starts_in_the_triggerer_waiting_for_the_iteration_before() -> None:
    """What the scheduler reads (the serialized DAG): the first body step starts deferred on
    ``EarlierIterationTrigger`` for the body's last task, then runs ``after_previous_iteration``."""
    from airflow.serialization.serialized_objects import BaseSerialization, DagSerialization

    value = {
        "type": "forloopflow",
        "iterator": {"type": "javascript", "expr": "[1, 2, 3]"},
        "modules": [step("b0"), step("b1")],
    }
    flow = load_flow({"summary": "S", "value": {"modules": [{"id": "l", "value": value}]}}).flow
    dag = DagSerialization.from_dict(DagSerialization.to_dict(build_dag(flow, dag_id="x")))
    first, second = dag.task_dict["l_iterations.b0"], dag.task_dict["l_iterations.b1"]
    assert first.start_from_trigger and not second.start_from_trigger
    args = first.start_trigger_args
    assert args.trigger_cls == "airflow_openflow.triggers.waits.EarlierIterationTrigger"
    kwargs = BaseSerialization.deserialize(args.trigger_kwargs)  # stored encoded, as Airflow does
    assert kwargs == {"last_task_id": "l_iterations.b1", "items_task_id": "l_items", "window": 1}
    assert args.next_method == "after_previous_iteration"
    assert first.max_active_tis_per_dagrun is None


def test_branchone_runs_on_a_chooser_groups_and_a_collector() -> None:
    choice = {
        "id": "c",
        "value": {
            "type": "branchone",
            "branches": [{"expr": "true", "modules": [step("x")]}],
            "default": [step("d1"), step("d2")],
        },
    }
    dag = build_dag(load_flow({"summary": "S", "value": {"modules": [choice]}}).flow, dag_id="x")
    assert dag.task_dict["c_branch_0.x"].upstream_task_ids == {"c_choose"}
    assert dag.task_dict["c_branch_0.x"].plan.branch_choice == ("c_choose", 0)
    assert dag.task_dict["c_default.d1"].plan.branch_choice == ("c_choose", -1)
    assert dag.task_dict["c_default.d2"].plan.branch_choice is None
    assert dag.task_dict["c"].upstream_task_ids == {"c_choose", "c_branch_0.x", "c_default.d2"}


def test_a_preprocessor_runs_first_and_no_input_is_required_then() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    document = {"summary": "S", "schema": schema, "value": {"modules": [step("a")]}}
    plain = build_dag(load_flow(document).flow, dag_id="plain")
    with pytest.raises(ValueError):
        plain.params.validate()  # n is required when triggering
    preprocessor = {"type": "rawscript", "language": "python3", "content": "def main():\n    return {}\n"}
    document["value"]["preprocessor_module"] = {"id": "preprocessor", "value": preprocessor}
    dag = build_dag(load_flow(document).flow, dag_id="pre")
    assert [t.task_id for t in dag.topological_sort()] == ["preprocessor", "a", "flow_result"]
    dag.params.validate()  # a trigger event's conf need not hold the flow's inputs


def test_the_trigger_event_of_a_run() -> None:
    from types import SimpleNamespace

    from airflow.utils.types import DagRunType

    from airflow_openflow.operators.preprocessor import trigger_event

    event = {"kind": "webhook", "body": {"x": 1}}
    manual = SimpleNamespace(conf={"__openflow_event": event}, run_type=DagRunType.MANUAL)
    assert trigger_event(manual) == event
    assert trigger_event(SimpleNamespace(conf={"x": 1}, run_type=DagRunType.MANUAL)) is None
    assert trigger_event(SimpleNamespace(conf={}, run_type=DagRunType.SCHEDULED)) is None
    asset_event = SimpleNamespace(model_dump=lambda mode: {"asset": {"uri": "s3://b/k"}, "extra": {"n": 1}})
    by_asset = SimpleNamespace(
        conf={}, run_type=DagRunType.ASSET_TRIGGERED, consumed_asset_events=[asset_event]
    )
    assert trigger_event(by_asset) == {
        "kind": "asset",
        "events": [{"asset": {"uri": "s3://b/k"}, "extra": {"n": 1}}],
    }


@pytest.mark.parametrize("defs", ["$defs", "definitions"])
def test_params_resolve_refs_to_the_schemas_definitions(defs: str) -> None:
    from airflow_openflow.runner import FlowInputError, _check_inputs

    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        defs: {"name": {"type": "string", "minLength": 1}},
        "properties": {"who": {"$ref": f"#/{defs}/name", "default": "ada"}},
    }
    flow = load_flow({"summary": "S", "schema": schema, "value": {"modules": [step("a")]}}).flow
    dag = build_dag(flow, dag_id="x")
    dag.params.validate()
    _check_inputs(dag, {"who": "bob"})  # what `airflow-openflow run` does before a run
    with pytest.raises(FlowInputError, match="should be non-empty"):
        _check_inputs(dag, {"who": ""})


def test_a_gated_first_step_gets_its_params_in_the_triggerer_from_a_flow_with_a_schema() -> None:
    """The triggerer builds the template context of a task that starts there from the serialized
    DAG; in Airflow 3.3.2 a task that carries the DAG's params fails that validation, and the
    error ends the triggerer's runner process. The gated step carries none: the run's conf and the
    schema's defaults still reach it."""
    from airflow.sdk.definitions.param import process_params
    from airflow.serialization.serialized_objects import DagSerialization

    schema = {
        "type": "object",
        "properties": {"work": {"type": "string"}, "n": {"type": "integer", "default": 3}},
        "required": ["work"],
    }
    value = {
        "type": "forloopflow",
        "iterator": {"type": "javascript", "expr": "[1, 2]"},
        "modules": [step("b0")],
    }
    document = {"summary": "S", "schema": schema, "value": {"modules": [{"id": "l", "value": value}]}}
    dag = build_dag(load_flow(document).flow, dag_id="x")
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    for built in (dag, serialized):  # the worker's DAG, the triggerer's
        task = built.get_task("l_iterations.b0")
        assert process_params(built, task, {"work": "w"}, suppress_exception=False) == {"work": "w", "n": 3}


def test_the_gate_names_the_iteration_trigger_without_importing_it_at_parse_time() -> None:
    from airflow_openflow.compile.body import EARLIER_ITERATION_TRIGGER
    from airflow_openflow.triggers.waits import EarlierIterationTrigger

    cls = EarlierIterationTrigger
    assert f"{cls.__module__}.{cls.__qualname__}" == EARLIER_ITERATION_TRIGGER
