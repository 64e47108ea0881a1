"""The command line: validate (without Airflow), render."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_openflow.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "dags" / "flows" / "f" / "examples" / "order_summary.flow"


def test_validate_accepts_the_example_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "dags" / "flows")]) == 0
    assert "flow.yaml: ok" in capsys.readouterr().out


def test_validate_names_file_line_and_json_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "summary: bad\nvalue:\n  modules:\n    - id: a\n      value:\n        type: rawscript\n"
        "        language: python3\n        input_transforms: {}\n"
    )
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5 at value.modules[0].value.content: error: missing required field 'content'" in err


def test_validate_rejects_malformed_json_with_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"summary": "x",\n "value": {"modules": [}\n}')
    assert main(["validate", str(bad)]) == 2
    assert f"{bad}:2" in capsys.readouterr().err


def test_validate_reports_every_broken_file_and_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good.json").write_text(json.dumps({"summary": "g", "value": {"modules": []}}))
    (tmp_path / "bad.json").write_text(json.dumps({"summary": "b", "value": {"modules": 3}}))
    (tmp_path / "list.json").write_text("[1, 2]")  # not a flow document: not checked
    assert main(["validate", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "1 valid, 1 invalid" in captured.out and "bad.json" in captured.err
    assert "list.json" not in captured.out + captured.err


def test_validate_works_where_airflow_is_not_installed() -> None:
    # ``sys.modules["airflow"] = None`` makes every ``import airflow...`` fail, as without Airflow.
    code = (
        "import sys; sys.modules['airflow'] = None; from airflow_openflow.cli import main; "
        "rc = main(['validate', sys.argv[1]]); assert 'quickjs' not in sys.modules; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "note: Airflow cannot be imported" in done.stdout and "order_summary.flow: ok" in done.stdout


def test_validate_no_build_does_not_import_airflow() -> None:
    code = (
        "import sys; from airflow_openflow.cli import main; "
        "rc = main(['validate', '-q', '--no-build', sys.argv[1]]); "
        "assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules), 'airflow'; "
        "assert 'quickjs' not in sys.modules; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_validate_reports_a_flow_that_does_not_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document that loads but that the DAG file could not turn into a DAG is invalid."""
    import airflow_openflow.compile

    real_build_dag = airflow_openflow.compile.build_dag

    def build_dag(flow: Any, **kwargs: Any) -> Any:  # Airflow refusing one DAG, as it may
        if flow.summary == "refused":
            raise ValueError("Airflow does not accept this DAG")
        return real_build_dag(flow, **kwargs)

    monkeypatch.setattr(airflow_openflow.compile, "build_dag", build_dag)
    (tmp_path / "good.json").write_text(json.dumps({"summary": "g", "value": {"modules": []}}))
    (tmp_path / "refused.json").write_text(json.dumps({"summary": "refused", "value": {"modules": []}}))
    assert main(["validate", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert (
        f"{tmp_path / 'refused.json'}: error: the flow cannot be built into an Airflow DAG: "
        "ValueError: Airflow does not accept this DAG" in captured.err
    )
    assert "good.json: ok" in captured.out and "1 valid, 1 invalid" in captured.out
    assert main(["validate", "--no-build", str(tmp_path)]) == 0  # loading alone cannot tell


def test_validate_builds_an_approval_in_a_flow_with_a_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Such a flow used to fail to build (``params`` twice to the approval operator): validate
    must say ok, as the DAG file then builds it (issue 14, item 0)."""
    schema = {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}
    form = {"schema": {"type": "object", "properties": {"comment": {"type": "string"}}}}
    for name, suspend in (("plain", {"required_events": 1}), ("form", {"resume_form": form})):
        step = {"id": "a", "value": {"type": "identity"}, "suspend": suspend}
        document = {"summary": name, "schema": schema, "value": {"modules": [step]}}
        (tmp_path / f"{name}.json").write_text(json.dumps(document))
    assert main(["validate", str(tmp_path)]) == 0, capsys.readouterr().err
    assert "2 valid, 0 invalid" in capsys.readouterr().out


def test_validate_checks_every_document_whatever_one_of_them_raises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_openflow.dag_factory

    real = airflow_openflow.dag_factory.prepare_document

    def prepare_document(path: Path, root: Path | None) -> Any:
        if path.name == "a.json":
            raise RuntimeError("a bug")
        return real(path, root)

    monkeypatch.setattr(airflow_openflow.dag_factory, "prepare_document", prepare_document)
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps({"summary": name, "value": {"modules": []}}))
    assert main(["validate", "--no-build", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert f"{tmp_path / 'a.json'}: error: the flow cannot be checked: RuntimeError: a bug" in captured.err
    assert "b.json: ok" in captured.out and "1 valid, 1 invalid" in captured.out


@pytest.mark.parametrize("script_path", ["", "/", "."])
def test_validate_goes_on_after_a_script_path_that_names_nothing(
    script_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    step = {"id": "a", "value": {"type": "script", "path": script_path, "input_transforms": {}}}
    (tmp_path / "a.json").write_text(json.dumps({"summary": "a", "value": {"modules": [step]}}, indent=1))
    (tmp_path / "b.json").write_text(json.dumps({"summary": "b", "value": {"modules": []}}))
    assert main(["validate", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert f"{tmp_path / 'a.json'}:9 at value.modules[0].value.path: error: script path" in captured.err
    assert "1 valid, 1 invalid" in captured.out


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "[1, NaN]"])
def test_run_refuses_nan_and_infinity_in_the_input(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(EXAMPLE), "--input", f'{{"n": {value}}}']) == 2
    err = capsys.readouterr().err
    assert err.startswith("--input is not valid JSON: ") and "JSON has no NaN or Infinity" in err


def test_render_shows_tasks_rules_and_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "params: customer, items, currency" in out
    assert "receipt  [OpenFlowStepOperator, trigger_rule=none_failed]  <- total" in out
    assert "flow_result  [FlowResultOperator, trigger_rule=all_done]  <- summary" in out


def _guarded(body: str) -> subprocess.Popen[bytes]:
    """A process that runs ``body`` under ``run``'s output guard: exit 141 on _OutputClosed."""
    code = (
        "import os, sys, time\n"
        "from airflow_openflow.cli import _OutputClosed, _OutputGuard\n"
        "try:\n"
        "    with _OutputGuard():\n"
        + "".join(f"        {line}\n" for line in body.splitlines())
        + "except _OutputClosed:\n"
        "    sys.stderr.write('output closed\\n')\n"
        "    sys.exit(141)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_run_guard_ends_a_quiet_main_thread_soon_after_stdout_closes() -> None:
    import time

    proc = _guarded("print('ready', flush=True)\ntime.sleep(60)")
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert proc.stdout.readline() == b"ready\n"
        closed_at = time.monotonic()
        proc.stdout.close()
        assert proc.wait(timeout=30) == 141
        assert time.monotonic() - closed_at < 10  # polled every 0.25 s
        assert proc.stderr.read() == b"output closed\n"  # stderr still works, no traceback
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_guard_ignores_a_broken_pipe_that_is_not_stdout_or_stderr() -> None:
    # e.g. the executor's queue to a worker that died: an OSError where it happens, not the end
    body = (
        "r, w = os.pipe()\nos.close(r)\n"
        "try:\n    os.write(w, b'x')\nexcept BrokenPipeError:\n    print('EPIPE', flush=True)\n"
        "time.sleep(0.5)\nprint('still running', flush=True)"
    )
    proc = _guarded(body)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (0, b"EPIPE\nstill running\n", b"")


def _schedule(folder: Path, name: str, script_path: str, cron: str = "0 0 9 * * *", tz: str = "UTC") -> None:
    text = f"schedule: {cron}\ntimezone: {tz}\nscript_path: {script_path}\nis_flow: true\n"
    (folder / f"{name}.schedule.yaml").write_text(text)


@pytest.mark.parametrize("build", [True, False])
def test_validate_checks_the_schedule_files_as_the_loader_does(
    build: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cron, timezone and the flow a schedule file points at (issue 13, item 4), with and without
    building the DAGs."""
    folder = tmp_path / "f" / "demo"
    folder.mkdir(parents=True)
    for name in ("good", "badcron", "badtz"):
        (folder / f"{name}.json").write_text(json.dumps({"summary": name, "value": {"modules": []}}))
    _schedule(folder, "good", "f/demo/good")
    _schedule(folder, "badcron", "f/demo/badcron", cron="61 * * * * *")
    _schedule(folder, "badtz", "f/demo/badtz", tz="Mars/Olympus")
    _schedule(folder, "ghost", "f/demo/missing")  # valid, but no such flow
    (folder / "lost.schedule.yaml").write_text("schedule: [unclosed\n")  # broken, no flow named lost
    argv = ["validate", str(tmp_path)] if build else ["validate", "--no-build", str(tmp_path)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "good.json: ok" in captured.out
    assert f"{folder / 'badcron.schedule.yaml'}:1 at schedule: error:" in captured.err
    assert f"{folder / 'badtz.schedule.yaml'}:2 at timezone: error: " in captured.err
    assert "Mars/Olympus" in captured.err
    assert f"{folder / 'lost.schedule.yaml'}:2: error: invalid YAML" in captured.err
    assert (
        f"{folder / 'ghost.schedule.yaml'}:3 at script_path: warning: this schedule runs the flow "
        "'f/demo/missing', but no flow with that path is found" in captured.out
    )
    assert "1 valid, 2 invalid, 1 invalid schedule file(s)" in captured.out

    # what validate calls ok is what the DAG file builds without a placeholder
    for name in ("badcron", "badtz", "lost", "ghost"):
        (folder / f"{name}.schedule.yaml").unlink()
    (folder / "badcron.json").unlink()
    (folder / "badtz.json").unlink()
    assert main(argv) == 0, capsys.readouterr().err
    if build:
        from airflow_openflow.dag_factory import load_openflow_dags

        dags = load_openflow_dags(tmp_path, strict=True)
        assert [dag.timetable.expression for dag in dags.values()] == ["0 9 * * *"]
