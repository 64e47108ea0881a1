"""Control flow through real DAG runs (``run_flow``): what the conformance corpus leaves out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import airflow_openflow
from tests.flows import counting, flow, py


def test_failure_module_can_recover_the_flow() -> None:
    document = flow(py("a", "raise ValueError('broken')"), py("b", "return 'never'"))
    document["value"]["failure_module"] = py(
        "failure",
        "return {'recover': True, 'saw': e['error']['name'], 'msg': m, 'run': r}",
        e="previous_result",
        m="error.message",
        r="typeof flow_job_id",
    )
    outcome = airflow_openflow.run_flow(document, {})
    assert (outcome.status, outcome.result) == (
        "success",
        {"recover": True, "saw": "ValueError", "msg": "broken", "run": "string"},
    )
    assert outcome.task_states["a"] == "failed" and outcome.task_states["failure"] == "success"


def test_failure_module_does_not_run_when_nothing_fails() -> None:
    document = flow(py("a", "return 1"))
    document["value"]["failure_module"] = py("failure", "return 'ran'")
    outcome = airflow_openflow.run_flow(document, {})
    assert (outcome.status, outcome.result) == ("success", 1)
    assert outcome.task_states["failure"] == "skipped"


@pytest.mark.parametrize("mode", ["in_process", "executor"])
def test_sleep_waits_before_the_next_step_in_a_deferred_task(mode: str) -> None:
    # A sleep of a second or more defers, whose trigger ends the sleep task itself (executor mode);
    # in process the trigger runs inline.
    a = py("a", "import time\nreturn time.time()")
    a["sleep"] = {"type": "javascript", "expr": "result > 0 ? 3 : 0"}
    b = py("b", "import time\nreturn time.time() - t", t="results.a")
    outcome = airflow_openflow.run_flow(flow(a, b), {}, mode=mode)
    assert outcome.status == "success" and outcome.result >= 3
    assert outcome.task_states["a_sleep"] == "success"


def test_timeout_fails_a_script_that_runs_too_long() -> None:
    a = py("a", "import time\ntime.sleep(60)")
    a["timeout"] = {"type": "static", "value": 1}
    outcome = airflow_openflow.run_flow(flow(a), {})
    assert outcome.status == "failure"
    assert outcome.result["error"]["name"] == "TimeoutError"


def test_skip_expr_skips_the_whole_flow() -> None:
    document = flow(py("a", "return 'ran'"))
    document["value"]["skip_expr"] = "flow_input.quiet"
    skipped = airflow_openflow.run_flow(document, {"quiet": True})
    assert skipped.status == "success" and skipped.skipped and skipped.task_states["a"] == "skipped"
    ran = airflow_openflow.run_flow(document, {"quiet": False})
    assert (ran.status, ran.result, ran.skipped) == ("success", "ran", False)


def test_flow_env_is_visible_in_expressions_at_every_depth() -> None:
    inner = py("inner", "return [k, i]", k="flow_env.KIND", i="flow_input.iter.value")
    loop: dict[str, Any] = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "skip_failures": False,
            "iterator": {"type": "javascript", "expr": "flow_env.ITEMS"},
            "modules": [inner],
        },
    }
    document = flow(loop)
    document["value"]["flow_env"] = {"KIND": "env", "ITEMS": [1, 2]}
    outcome = airflow_openflow.run_flow(document, {})
    assert (outcome.status, outcome.result) == ("success", [["env", 1], ["env", 2]])


def test_a_script_by_path_runs_from_the_repository(tmp_path: Path) -> None:
    (tmp_path / "f" / "lib").mkdir(parents=True)
    (tmp_path / "f" / "lib" / "double.py").write_text("def main(x):\n    return x * 2\n")
    folder = tmp_path / "f" / "app" / "uses_script.flow"
    folder.mkdir(parents=True)
    (folder / "flow.yaml").write_text(
        "summary: uses a script\nvalue:\n  modules:\n    - id: a\n      value:\n        type: script\n"
        "        path: f/lib/double\n        input_transforms:\n"
        "          x: {type: javascript, expr: flow_input.n}\n"
    )
    outcome = airflow_openflow.run_flow(folder, {"n": 21})
    assert (outcome.status, outcome.result) == ("success", 42)


def test_retry_then_continue_on_error_after_the_last_attempt(tmp_path: Path) -> None:
    counter = tmp_path / "tries"
    a = py("a", counting(str(counter), "raise RuntimeError('always')"))
    a["retry"] = {"constant": {"attempts": 2, "seconds": 0}}
    a["continue_on_error"] = True
    outcome = airflow_openflow.run_flow(
        flow(a, py("b", "return e['error']['message']", e="previous_result")), {}
    )
    assert (outcome.status, outcome.result) == ("success", "always")
    assert counter.read_text() == "xxx"  # 1 + 2 retries, then the error object went on


def test_retry_if_false_stops_retrying(tmp_path: Path) -> None:
    counter = tmp_path / "tries"
    a = py("a", counting(str(counter), "raise KeyError('fatal')"))
    a["retry"] = {
        "constant": {"attempts": 3, "seconds": 0},
        "retry_if": {"expr": "result.error.name != 'KeyError'"},
    }
    outcome = airflow_openflow.run_flow(flow(a), {})
    assert outcome.status == "failure" and counter.read_text() == "x"


def test_a_sub_flow_runs_with_its_arguments_and_returns_its_result(tmp_path: Path) -> None:
    child = tmp_path / "f" / "lib" / "double_all.flow"
    child.mkdir(parents=True)
    (child / "flow.yaml").write_text(
        "summary: double all\nvalue:\n  modules:\n    - id: d\n      value:\n        type: forloopflow\n"
        "        skip_failures: false\n        iterator: {type: javascript, expr: flow_input.xs}\n"
        "        modules:\n          - id: x2\n            value:\n              type: rawscript\n"
        "              language: python3\n              content: 'def main(v):\n    return v * 2'\n"
        "              input_transforms:\n"
        "                v: {type: javascript, expr: flow_input.iter.value}\n"
    )
    parent = tmp_path / "f" / "app" / "parent.flow"
    parent.mkdir(parents=True)
    (parent / "flow.yaml").write_text(
        "summary: parent\nvalue:\n  modules:\n    - id: call\n      value:\n        type: flow\n"
        "        path: f/lib/double_all\n        input_transforms:\n"
        "          xs: {type: javascript, expr: flow_input.numbers}\n"
    )
    outcome = airflow_openflow.run_flow(parent, {"numbers": [1, 2, 3]})
    assert (outcome.status, outcome.result) == ("success", [2, 4, 6])


def test_cache_ttl_reuses_the_result_across_runs(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    a = py("a", counting(str(counter), "return n * 2"), n="flow_input.n")
    a["cache_ttl"] = 600
    document = flow(a)
    assert airflow_openflow.run_flow(document, {"n": 5}).result == 10
    assert airflow_openflow.run_flow(document, {"n": 5}).result == 10
    assert airflow_openflow.run_flow(document, {"n": 6}).result == 12
    assert counter.read_text() == "xx"  # the second run with n=5 came from the cache


def test_a_loop_task_killed_mid_way_resumes_after_its_finished_iterations(tmp_path: Path) -> None:
    log = tmp_path / "iterations"
    body = py(
        "work",
        f"import os, pathlib, signal\np = pathlib.Path({str(log)!r})\n"
        "p.write_text((p.read_text() if p.exists() else '') + str(i))\n"
        f"crashed = pathlib.Path({str(tmp_path / 'crashed')!r})\n"
        "if i == 2 and not crashed.exists():\n"
        "    crashed.write_text('x')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-loop\n"
        "return i",
        i="flow_input.iter.index",
    )
    loop: dict[str, Any] = {
        "id": "w",
        "value": {"type": "whileloopflow", "skip_failures": False, "modules": [body]},
        "stop_after_if": {"expr": "result == 3"},
        "retry": {"constant": {"attempts": 1, "seconds": 0}},
    }
    # The executor: in process, the killed process would be the caller's.
    outcome = airflow_openflow.run_flow(flow(loop), {}, mode="executor")
    assert (outcome.status, outcome.result) == ("success", [0, 1, 2, 3])
    assert log.read_text() == "01223"  # 0 and 1 ran once; 2 ran again after the crash, then 3


def test_flow_cache_ttl_returns_an_earlier_runs_result_for_the_same_arguments(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    document = flow(py("a", counting(str(runs), "return n * 2"), n="flow_input.n"))
    document["value"]["cache_ttl"] = 600
    first = airflow_openflow.run_flow(document, {"n": 21})
    assert (first.status, first.result) == ("success", 42)
    again = airflow_openflow.run_flow(document, {"n": 21})
    assert (again.status, again.result) == ("success", 42)
    assert runs.read_text() == "x"  # the second run took the cached result
    assert again.task_states["a"] == "skipped" and again.task_states["flow_cache"] == "success"
    other = airflow_openflow.run_flow(document, {"n": 5})
    assert (other.status, other.result) == ("success", 10)
    assert runs.read_text() == "xx"  # other arguments: the flow ran


def test_the_preprocessor_runs_only_for_a_trigger_event_and_its_result_is_the_flow_input() -> None:
    preprocessor = {
        **py("preprocessor", "return {'n': event['body']['amount'] * 100}", event="flow_input.event"),
    }
    document = flow(
        py("a", "return [n, p]", n="flow_input.n", p="previous_result"),
        schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    )
    document["value"]["preprocessor_module"] = preprocessor
    event = {"kind": "webhook", "body": {"amount": 3}}
    triggered = airflow_openflow.run_flow(document, {"__openflow_event": event})
    assert (triggered.status, triggered.result) == ("success", [300, {"n": 300}])
    assert triggered.task_states["preprocessor"] == "success"

    # A run started with the flow's own inputs (the UI, a schedule): no preprocessing.
    direct = airflow_openflow.run_flow(document, {"n": 7})
    assert (direct.status, direct.result) == ("success", [7, {"n": 7}])
    assert direct.task_states["preprocessor"] == "skipped"

    # A non-object result is wrapped as {"value": ...}; a failing preprocessor fails the flow.
    document["value"]["preprocessor_module"] = py("preprocessor", "return e['body']", e="flow_input.event")
    wrapped = airflow_openflow.run_flow(document, {"__openflow_event": {"kind": "webhook", "body": 5}})
    assert (wrapped.status, wrapped.result) == ("success", [None, {"value": 5}])
    broken = airflow_openflow.run_flow(document, {"__openflow_event": {"kind": "webhook"}})
    assert broken.status == "failure" and broken.result["error"]["name"] == "KeyError"
    assert broken.task_states["a"] == "upstream_failed"


def test_run_flow_ends_an_unanswered_approval_at_its_timeout() -> None:
    a = {**py("a", "return 1"), "suspend": {"required_events": 1, "timeout": 2}}
    b = py("b", "return [r, p]", r="resume", p="previous_result")
    failed = airflow_openflow.run_flow(flow(a, b), {})
    assert failed.status == "failure"
    timed_out = {"name": "SuspendedTimedOut", "message": "Timed out waiting to be resumed"}
    assert failed.result == {"error": timed_out}
    a["suspend"]["continue_on_disapprove_timeout"] = True
    went_on = airflow_openflow.run_flow(flow(a, b), {})
    assert went_on.status == "success" and went_on.result[0]["error"]["name"] == "SuspendedTimedOut"
    assert went_on.result[1] == 1


def test_run_flow_times_out_each_loop_iterations_approval_of_its_own() -> None:
    """One approval per iteration (issue 14): each times out on its own, and with
    continue_on_disapprove_timeout the next step of that iteration sees the error as its resume."""
    suspend = {"required_events": 1, "timeout": 2, "continue_on_disapprove_timeout": True}
    a = {**py("a", "return x * 10", x="flow_input.iter.value"), "suspend": suspend}
    b = py("b", "return [i, r, p]", i="flow_input.iter.index", r="resume.error.name", p="previous_result")
    loop = {
        "id": "l",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "javascript", "expr": "[1, 2]"},
            "skip_failures": False,
            "modules": [a, b],
        },
    }
    done = airflow_openflow.run_flow(flow(loop), {})
    assert (done.status, done.result) == (
        "success",
        [[0, "SuspendedTimedOut", 10], [1, "SuspendedTimedOut", 20]],
    )
    assert done.task_states["l_iterations.a_approval[1]"] == "success"

    # Without it, a parallel loop's iterations that time out fail the loop (no skip_failures):
    # the flow fails and its failure module sees the loop's array, with the errors at their indexes.
    del suspend["continue_on_disapprove_timeout"]
    loop["value"]["parallel"] = True
    document = flow(loop)
    document["value"]["failure_module"] = py(
        "failure", "return e", e="previous_result.map(r => r.error.name)"
    )
    failed = airflow_openflow.run_flow(document, {})
    assert (failed.status, failed.result) == ("failure", ["SuspendedTimedOut", "SuspendedTimedOut"])
    assert failed.task_states["l_iterations.a_approval[0]"] == "failed"


def test_run_flow_runs_an_approval_in_a_sequential_branchall_before_the_next_branch() -> None:
    """An approval in branch 0 is a task of that branch: branch 1 starts once it has ended (here
    at its timeout, going on with continue_on_disapprove_timeout)."""
    suspend = {"required_events": 1, "timeout": 2, "continue_on_disapprove_timeout": True}
    a = {**py("a", "return 'a'"), "suspend": suspend}
    after = py("after_a", "return [p, r]", p="previous_result", r="resume.error.name")
    branches = {
        "id": "both",
        "value": {
            "type": "branchall",
            "parallel": False,
            "branches": [{"modules": [a, after]}, {"modules": [py("b", "return 'b'")]}],
        },
    }
    done = airflow_openflow.run_flow(flow(branches), {})
    assert (done.status, done.result) == ("success", [["a", "SuspendedTimedOut"], "b"])
    assert done.task_states["both_branch_0.a_approval"] == "success"


def test_run_flow_runs_an_approval_in_a_flow_with_a_schema() -> None:
    """Its form has a field named like a flow input, of another schema: the task still opens its
    request (issue 14, item 0)."""
    schema = {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}
    form = {"schema": {"type": "object", "properties": {"amount": {"type": "number", "maximum": 5}}}}
    suspend = {
        "required_events": 1,
        "timeout": 2,
        "resume_form": form,
        "continue_on_disapprove_timeout": True,
    }
    a = {**py("a", "return n", n="flow_input.amount"), "suspend": suspend}
    b = py("b", "return [r, i]", r="resume.error.name", i="flow_input")
    done = airflow_openflow.run_flow({**flow(a, b), "schema": schema}, {"amount": 7})
    assert (done.status, done.result) == ("success", ["SuspendedTimedOut", {"amount": 7}])
