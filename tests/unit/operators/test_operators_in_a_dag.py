"""operators/: what a user sees of the operators in the DAG a flow becomes (no database, no run):
task ids and classes, trigger rules, docs, template fields, retry delays; and that every operator
and trigger documents each of its arguments."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import BaseOperator
from airflow.sdk.definitions.retry_policy import RetryAction
from airflow.triggers.base import BaseTrigger

from airflow_openflow.compile import build_dag
from airflow_openflow.operators.retry_policy import WindmillRetryPolicy
from airflow_openflow.spec import load_flow

OPERATOR_MODULES = [
    "approval",
    "body",
    "branches",
    "flow_cache",
    "invalid",
    "loop",
    "preprocessor",
    "result",
    "sleep",
    "step",
    "subflow",
]


def step(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "identity"}, **extra}


def _dag(value: dict[str, Any], **document: Any) -> Any:
    return build_dag(load_flow({"summary": "S", "value": value, **document}).flow, dag_id="x")


def _rule(task: Any) -> str:
    return str(getattr(task.trigger_rule, "value", task.trigger_rule))


@pytest.fixture(scope="module")
def every_kind() -> Any:
    """A flow that places every operator the compiler has for one DAG."""
    return _dag(
        {
            "preprocessor_module": {
                "id": "preprocessor",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": "def main(event):\n    return event\n",
                },
            },
            "cache_ttl": 60,
            "modules": [
                step(
                    "a",
                    suspend={"required_events": 1, "timeout": 60},
                    sleep={"type": "static", "value": 5},
                ),
                {
                    "id": "l",
                    "value": {
                        "type": "forloopflow",
                        "iterator": {"type": "javascript", "expr": "[1, 2]"},
                        "skip_failures": False,
                        "modules": [step("b1"), step("b2")],
                    },
                },
                {"id": "ba", "value": {"type": "branchall", "branches": [{"modules": [step("x")]}]}},
                {
                    "id": "bo",
                    "value": {
                        "type": "branchone",
                        "branches": [{"expr": "true", "modules": [step("y")]}],
                        "default": [],
                    },
                },
            ],
            "failure_module": step("failure"),
        }
    )


EXPECTED = [
    # task id, operator, trigger rule, template fields
    ("preprocessor", "PreprocessorOperator", "all_success", ()),
    ("flow_cache", "FlowCacheOperator", "none_failed", ()),
    ("a", "OpenFlowStepOperator", "none_failed", ()),
    ("a_approval", "StepApprovalOperator", "none_failed", ("iteration",)),
    ("a_sleep", "FlowSleepOperator", "none_failed", ()),
    ("l_items", "LoopItemsOperator", "none_failed", ()),
    ("l_iterations.b1", "BodyStepOperator", "all_success", ("iteration",)),
    ("l_iterations.b2", "BodyStepOperator", "none_failed", ("iteration",)),
    ("l", "LoopCollectorOperator", "all_done", ()),
    ("ba_branch_0.x", "BodyStepOperator", "none_failed", ("iteration",)),
    ("ba", "BranchAllCollectorOperator", "all_done", ()),
    ("bo_choose", "BranchChooserOperator", "none_failed", ()),
    ("bo_branch_0.y", "BodyStepOperator", "none_failed", ("iteration",)),
    ("bo", "BranchOneCollectorOperator", "all_done", ()),
    ("failure", "OpenFlowStepOperator", "one_failed", ()),
    ("flow_result", "FlowResultOperator", "all_done", ()),
]


def test_each_operator_has_its_task_id_trigger_rule_and_template_fields(every_kind: Any) -> None:
    tasks = [
        (t.task_id, type(t).__name__, _rule(t), tuple(t.template_fields))
        for t in every_kind.topological_sort()
    ]
    assert tasks == EXPECTED


def test_every_task_has_docs_and_its_template_fields_exist(every_kind: Any) -> None:
    for task in every_kind.tasks:
        assert task.doc_md and task.doc_md.strip(), task.task_id
        for name in task.template_fields:
            assert hasattr(task, name), f"{task.task_id}: template field {name} is not an attribute"


def test_the_operators_arguments_reach_their_attributes(every_kind: Any) -> None:
    tasks = every_kind.task_dict
    assert tasks["flow_cache"].ttl == 60 and len(tasks["flow_cache"].version) == 64
    assert tasks["flow_cache"].step_task_ids == tuple(
        sorted(set(every_kind.task_ids) - {"flow_cache", "flow_result"})
    )
    result = tasks["flow_result"]
    assert result.step_ids == ["preprocessor", "a", "a_approval", "l", "ba", "bo"]
    assert result.failure_step_id == "failure"
    assert result.cache == ("flow_cache", tasks["flow_cache"].version, 60.0)
    approval = tasks["a_approval"]
    assert approval.options == ["Approve", "Reject"] and approval.required == 1
    assert approval.response_timeout.total_seconds() == 60
    assert approval.subject == "Approve “a” of flow “S”"  # the step's and the flow's summaries (else ids)
    assert tasks["a_sleep"].sleep.value == 5 and tasks["a_sleep"].plan.step_id == "a"
    assert tasks["ba"].branch_task_ids == [["ba_branch_0.x"]]
    assert tasks["bo"].chooser_task_id == "bo_choose"
    assert tasks["bo"].branch_task_ids == {0: ["bo_branch_0.y"], -1: []}
    assert tasks["l_iterations.b1"].loop_gate is not None  # a sequential loop: iterations wait
    assert tasks["l_iterations.b1"].body_task_ids == ("l_iterations.b1", "l_iterations.b2")
    assert tasks["l"].plan.items_task_id == "l_items"


def test_a_suspend_with_hide_cancel_offers_only_approve() -> None:
    dag = _dag({"modules": [step("a", suspend={"required_events": 2, "hide_cancel": True})]})
    approval = dag.task_dict["a_approval"]
    assert approval.options == ["Approve"] and approval.required == 2
    assert approval.response_timeout.total_seconds() == 1800  # Windmill's default wait


def test_an_approval_in_a_flow_with_a_schema_has_only_its_own_form() -> None:
    """The DAG's params (the trigger form, from the schema) reach every operator of the DAG as
    ``params``; the approval's form is its ``resume_form`` only (issue 14, item 0)."""
    schema = {
        "type": "object",
        "properties": {"amount": {"type": "integer"}, "who": {"type": "string", "default": "ann"}},
        "required": ["amount"],
    }
    form = {"schema": {"type": "object", "properties": {"comment": {"type": "string"}}}}
    suspend = {"required_events": 1, "resume_form": form}
    dag = _dag({"modules": [step("a", suspend=suspend), step("b")]}, schema=schema)
    assert dag.task_dict["a_approval"].__class__.__name__ == "StepApprovalOperator"  # not the placeholder
    assert set(dag.params) == {"amount", "who"}  # the trigger form
    approval = dag.task_dict["a_approval"]
    assert set(approval.form_params) == {"comment"}  # the request's form (test_operators_execute)
    assert not approval.params  # so a run's conf is never checked against the form
    assert set(dag.task_dict["b"].params) == {"amount", "who"}  # the other tasks keep the DAG's

    without_form = _dag({"modules": [step("a", suspend={"required_events": 1})]}, schema=schema)
    assert not without_form.task_dict["a_approval"].form_params  # a plain Approve / Reject


def test_a_sub_flow_of_the_same_load_is_a_run_of_its_dag(tmp_path: Path) -> None:
    from airflow_openflow import load_openflow_dags

    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "second.json").write_text(
        json.dumps({"summary": "child", "value": {"modules": [step("c")]}})
    )
    call = {"id": "call", "value": {"type": "flow", "path": "team/second", "input_transforms": {}}}
    (tmp_path / "caller.json").write_text(json.dumps({"summary": "caller", "value": {"modules": [call]}}))
    task = load_openflow_dags(tmp_path, strict=True)["caller"].get_task("call")
    assert type(task).__name__ == "SubFlowRunOperator"
    assert (task.trigger_dag_id, task.child_result_task_id) == ("team__second", "flow_result")
    assert task.template_fields == () and task.doc_md and "team__second" in task.doc_md
    assert [type(link).__name__ for link in task.operator_extra_links] == ["TriggerDagRunLink"]


def test_an_invalid_document_becomes_one_failing_task(tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_openflow import load_openflow_dags

    (tmp_path / "broken.json").write_text('{"summary": "b", "value": {"modules": [{"id": "a"}]}}')
    dag = load_openflow_dags(tmp_path)["broken"]
    assert dag.task_ids == ["invalid_flow_document"] and "openflow-invalid" in dag.tags
    task = dag.get_task("invalid_flow_document")
    assert type(task).__name__ == "InvalidFlowOperator" and task.template_fields == ()
    assert task.error_text and task.error_text in task.doc_md
    with pytest.raises(AirflowFailException) as failed:
        task.execute({})
    assert task.error_text in str(failed.value) and "this flow document is invalid" in str(failed.value)


# --- retry: Windmill's delays on Airflow's retries ---------------------------------------------------


def _retried(retry: dict[str, Any]) -> Any:
    return _dag({"modules": [step("a", retry=retry)]}).task_dict["a"]


def _delays(task: Any, tries: int) -> list[float | None]:
    delays: list[float | None] = []
    for try_number in range(1, tries + 1):
        decision = task.retry_policy.evaluate(RuntimeError("boom"), try_number, task.retries + 1)
        default = decision.action is RetryAction.DEFAULT
        delays.append(None if default else decision.retry_delay.total_seconds())
    return delays


def test_constant_retries_wait_the_same_delay_then_leave_it_to_airflow() -> None:
    task = _retried({"constant": {"attempts": 3, "seconds": 5}})
    assert task.retries == 3 and task.retry_delay.total_seconds() == 5
    assert isinstance(task.retry_policy, WindmillRetryPolicy)
    assert _delays(task, 4) == [5, 5, 5, None]  # past the attempts: Airflow's default (no retry left)


def test_exponential_retries_wait_multiplier_times_seconds_to_the_k_plus_1() -> None:
    task = _retried({"exponential": {"attempts": 3, "multiplier": 3, "seconds": 2}})
    assert task.retries == 3 and task.retry_delay.total_seconds() == 6
    assert _delays(task, 4) == [6, 12, 24, None]  # 3 * 2 ** 1, 3 * 2 ** 2, 3 * 2 ** 3


def test_constant_attempts_come_before_the_exponential_ones() -> None:
    task = _retried(
        {
            "constant": {"attempts": 1, "seconds": 7},
            "exponential": {"attempts": 2, "multiplier": 1, "seconds": 2},
        }
    )
    assert task.retries == 3
    assert _delays(task, 4) == [7, 4, 8, None]  # k counts every retry: 2 ** 2, 2 ** 3


def test_an_exponential_delay_is_capped_at_six_hours() -> None:
    task = _retried({"exponential": {"attempts": 6, "multiplier": 1, "seconds": 10}})
    assert _delays(task, 6) == [10, 100, 1000, 10000, 21600, 21600]


def test_random_factor_spreads_the_delay_by_that_percentage() -> None:
    task = _retried({"exponential": {"attempts": 1, "multiplier": 1, "seconds": 4, "random_factor": 50}})
    seen = {_delays(task, 1)[0] for _ in range(50)}
    assert all(d is not None and 2 <= d <= 6 for d in seen) and len(seen) > 1


def test_the_retry_decision_says_why() -> None:
    policy = _retried({"constant": {"attempts": 1, "seconds": 2}}).retry_policy
    outcome = policy.evaluate(RuntimeError(), 1, 2)
    assert outcome.action is RetryAction.RETRY and outcome.reason == "Windmill retry 1: waiting 2 s"


def test_a_step_without_retry_has_no_policy() -> None:
    task = _dag({"modules": [step("a")]}).task_dict["a"]
    assert task.retries == 0 and task.retry_policy is None


# --- documentation: every argument of every operator and trigger -------------------------------------


def _classes() -> list[type]:
    found: list[type] = []
    modules = [importlib.import_module(f"airflow_openflow.operators.{m}") for m in OPERATOR_MODULES]
    modules.append(importlib.import_module("airflow_openflow.triggers.waits"))
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, (BaseOperator, BaseTrigger)):
                found.append(cls)
    return found


def _own_params(cls: type) -> list[inspect.Parameter]:
    if "__init__" not in cls.__dict__:
        return []
    params = list(inspect.signature(cls.__dict__["__init__"]).parameters.values())[1:]  # not self
    return [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]


@pytest.mark.parametrize("cls", [*_classes(), WindmillRetryPolicy], ids=lambda cls: cls.__name__)
def test_each_class_documents_every_argument(cls: type) -> None:
    doc = inspect.getdoc(cls) or ""
    assert doc.splitlines() and doc.splitlines()[0].strip(), f"{cls.__name__} has no summary line"
    missing = [p.name for p in _own_params(cls) if f":param {p.name}:" not in doc]
    assert not missing, f"{cls.__name__} does not document {missing}"


@pytest.mark.parametrize("cls", _classes(), ids=lambda cls: cls.__name__)
def test_operators_and_triggers_take_keyword_arguments_only(cls: type) -> None:
    positional = [p.name for p in _own_params(cls) if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert not positional, f"{cls.__name__} takes {positional} by position"


def test_the_classes_checked_are_all_there() -> None:
    names = {cls.__name__ for cls in _classes()}
    assert {row[1] for row in EXPECTED} | {"InvalidFlowOperator", "SubFlowRunOperator"} <= names
    assert {"TaskFinishedTrigger", "DagRunEndedTrigger", "_PollingTrigger"} <= names
