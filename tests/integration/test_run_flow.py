"""Step semantics through real DAG runs (``run_flow``): what a user of a flow sees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_openflow
from airflow_openflow import FlowDocumentError
from tests.flows import flow, py


def test_linear_flow_result_xcom_and_task_states() -> None:
    outcome = airflow_openflow.run_flow(
        flow(py("a", "return x + 1", x="flow_input.x"), py("b", "return {'twice': v * 2}", v="results.a")),
        {"x": 20},
    )
    assert outcome.status == "success"
    assert outcome.result == {"twice": 42}
    assert outcome.task_states == {"a": "success", "b": "success", "flow_result": "success"}


def test_schema_defaults_fill_missing_inputs_and_extra_inputs_pass_through() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "default": 5}, "label": {"type": "string"}},
    }
    outcome = airflow_openflow.run_flow(
        flow(
            py(
                "a",
                "return [n, label, other]",
                n="flow_input.n",
                label="flow_input.label",
                other="flow_input.other",
            ),
            schema=schema,
        ),
        {"other": "kept"},
    )
    assert (outcome.status, outcome.result) == ("success", [5, None, "kept"])


def test_inputs_that_break_the_schema_are_refused_before_the_run() -> None:
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    document = flow(py("a", "return n", n="flow_input.n"), schema=schema)
    with pytest.raises(airflow_openflow.FlowInputError, match="param n"):
        airflow_openflow.run_flow(document, {"n": "three"})
    with pytest.raises(airflow_openflow.FlowInputError):
        airflow_openflow.run_flow(document, {})


def test_empty_flow_returns_its_input() -> None:
    outcome = airflow_openflow.run_flow(flow(), {"hello": "world"})
    assert (outcome.status, outcome.result) == ("success", {"hello": "world"})


def test_skip_if_passes_the_previous_result_and_shows_skipped() -> None:
    b = py("b", "return 'ran'")
    b["skip_if"] = {"expr": "flow_input.skip"}
    outcome = airflow_openflow.run_flow(
        flow(py("a", "return 'from a'"), b, py("c", "return p", p="previous_result")), {"skip": True}
    )
    assert (outcome.status, outcome.result) == ("success", "from a")
    assert outcome.task_states["b"] == "skipped" and outcome.task_states["c"] == "success"


def test_mock_returns_the_mocked_value_without_running() -> None:
    a = py("a", "raise RuntimeError('must not run')")
    a["mock"] = {"enabled": True, "return_value": {"mocked": 1}}
    outcome = airflow_openflow.run_flow(flow(a, py("b", "return r", r="results.a")), {})
    assert (outcome.status, outcome.result) == ("success", {"mocked": 1})


def test_continue_on_error_passes_the_error_object_on() -> None:
    a = py("a", "raise ValueError('bad value')")
    a["continue_on_error"] = True
    outcome = airflow_openflow.run_flow(
        flow(a, py("b", "return [e['error']['name'], e['error']['message']]", e="previous_result")), {}
    )
    assert (outcome.status, outcome.result) == ("success", ["ValueError", "bad value"])


def test_a_transform_that_hijacks_to_json_is_a_step_error_continue_on_error_passes_on() -> None:
    # Windmill's own evaluation calls toJSON too: a patched one that throws is the expression's error.
    a = py(
        "a", "return v", v="(Object.prototype.toJSON = function () { throw new Error('no JSON') }, {a: 1})"
    )
    a["continue_on_error"] = True
    b = py(
        "b",
        "return {'got': e, 'patched': p}",
        e="previous_result",
        p="(Array.prototype.toJSON = () => 'x', [1])",
    )
    outcome = airflow_openflow.run_flow(flow(a, b), {})
    assert outcome.status == "success", outcome
    error = outcome.result["got"]["error"]
    assert (error["name"], error["step_id"]) == ("Error", "a") and "no JSON" in error["message"]
    assert outcome.result["patched"] == "x"  # a toJSON that works changes only its own value
    assert outcome.task_states["a"] == "success" and outcome.task_states["b"] == "success"


def test_continue_on_error_on_the_last_step_still_fails_the_flow() -> None:
    a = py("a", "raise ValueError('bad value')")
    a["continue_on_error"] = True
    outcome = airflow_openflow.run_flow(flow(a), {})
    assert outcome.status == "failure"
    assert outcome.result["error"]["name"] == "ValueError"


def test_script_exception_fails_the_flow_with_its_error_object() -> None:
    outcome = airflow_openflow.run_flow(
        flow(py("a", "return 1"), py("b", "raise KeyError('missing')"), py("c", "return 3")), {}
    )
    assert outcome.status == "failure"
    error = outcome.result["error"]
    assert error["name"] == "KeyError" and "missing" in error["message"] and error["step_id"] == "b"
    assert "Traceback" in error["stack"] or "line" in error["stack"]
    assert outcome.task_states["b"] == "failed" and outcome.task_states["c"] == "upstream_failed"
    assert outcome.task_states["flow_result"] == "failed"


def test_stop_with_skip_if_stopped_ends_successfully_and_skips_the_rest() -> None:
    a = py("a", "return 0")
    a["stop_after_if"] = {"expr": "result == 0", "skip_if_stopped": True}
    outcome = airflow_openflow.run_flow(flow(a, py("b", "return 1"), py("c", "return 2")), {})
    assert (outcome.status, outcome.result, outcome.skipped) == ("success", 0, True)
    assert outcome.task_states["b"] == "skipped" and outcome.task_states["c"] == "skipped"


def test_throwing_transform_fails_the_step_with_a_clear_error() -> None:
    outcome = airflow_openflow.run_flow(flow(py("a", "return v", v="results.nothing.deeper")), {})
    assert outcome.status == "failure"
    assert "results.nothing.deeper" in outcome.result["error"]["message"]


def test_runaway_expression_is_stopped_by_the_time_limit() -> None:
    outcome = airflow_openflow.run_flow(flow(py("a", "return v", v="(() => { while (true) {} })()")), {})
    assert outcome.status == "failure"
    assert "time limit" in outcome.result["error"]["message"]


def test_unsupported_construct_is_rejected_before_running() -> None:
    bad = flow(py("a", "return 1"))
    bad["value"]["modules"][0]["value"]["language"] = "nu"
    with pytest.raises(FlowDocumentError, match="language 'nu' is not supported"):
        airflow_openflow.run_flow(bad, {})


def test_unbounded_allocation_in_an_expression_is_stopped_by_the_memory_limit() -> None:
    outcome = airflow_openflow.run_flow(
        flow(
            py("a", "return v", v="(() => { const a = []; while (true) a.push(new Array(1e5).fill(1)); })()")
        ),
        {},
    )
    assert outcome.status == "failure"
    assert "memory limit" in outcome.result["error"]["message"]


def test_variables_and_resources_come_from_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    # Airflow reads AIRFLOW_VAR_* / AIRFLOW_CONN_* in the task process; workers inherit the env.
    monkeypatch.setenv("AIRFLOW_VAR_F__TEAM__GREETING", "hello")
    monkeypatch.setenv(
        "AIRFLOW_CONN_F__TEAM__DB",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "db.internal",
                "login": "ada",
                "password": "s3cret",
                "port": 5432,
                "schema": "sales",
                "extra": {"sslmode": "require"},
            }
        ),
    )
    a = py(
        "a",
        "return [g, static_var, db['host'], db['user'], db['dbname'], db['sslmode'], db['port']]",
        g='variable("f/team/greeting")',
        db='resource("f/team/db")',
        static_var="null",
    )
    a["value"]["input_transforms"]["static_var"] = {"type": "static", "value": "$var:f/team/greeting"}
    outcome = airflow_openflow.run_flow(flow(a), {})
    assert (outcome.status, outcome.result) == (
        "success",
        ["hello", "hello", "db.internal", "ada", "sales", "require", 5432],
    )


def test_a_missing_variable_fails_the_step_naming_the_airflow_key() -> None:
    outcome = airflow_openflow.run_flow(flow(py("a", "return v", v='variable("f/none/here")')), {})
    assert outcome.status == "failure"
    assert "f__none__here" in outcome.result["error"]["message"]


def test_bash_step_failure_reports_exit_code_and_output() -> None:
    step = {
        "id": "a",
        "value": {
            "type": "rawscript",
            "language": "bash",
            "input_transforms": {},
            "content": "echo working\necho oops >&2\nexit 3\n",
        },
    }
    outcome = airflow_openflow.run_flow(flow(step), {})
    assert outcome.status == "failure"
    assert outcome.result["error"]["name"] == "ExecutionErr"
    assert (
        "ExitCode: 3" in outcome.result["error"]["message"] and "oops" in outcome.result["error"]["message"]
    )


def test_cli_run_prints_only_the_result_on_stdout(tmp_path: Path) -> None:
    def cli(document: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "airflow_openflow.cli", "run", str(document), *args],
            capture_output=True,
            text=True,
            timeout=600,
        )

    document = tmp_path / "cli_flow.json"
    document.write_text(json.dumps(flow(py("a", "return {'n': n * 2}", n="flow_input.n"))))
    done = cli(document, "--input", '{"n": 21}')
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == {"n": 42}
    # stderr: the short view (Airflow's own logs are in the file it names), one line per step
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"running {document} (Airflow's log: ") and len(lines) <= 6, done.stderr
    log_file = Path(lines[0].split("Airflow's log: ", 1)[1].split(";", 1)[0])
    assert "DagRun Finished" in log_file.read_text(errors="replace")
    assert [line.split()[0] for line in lines[1:3]] == ["ok", "ok"] and lines[1].endswith("  a")
    assert lines[-1].startswith("flow success")

    failing = tmp_path / "cli_fail.json"
    failing.write_text(json.dumps(flow(py("a", "raise RuntimeError('nope')"))))
    done = cli(failing)
    assert done.returncode == 1, done.stderr[-3000:]
    assert json.loads(done.stdout)["error"]["name"] == "RuntimeError"
    assert "\n  FAILED " in done.stderr and "error in step a: " in done.stderr and "nope" in done.stderr
    assert "its log: " in done.stderr, done.stderr
