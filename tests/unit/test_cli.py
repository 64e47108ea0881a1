"""The command line: validate (without Airflow), render."""

from __future__ import annotations

import json
import shutil
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
        "from airflow_openflow.cli_output import OutputClosed as _OutputClosed, OutputGuard as _OutputGuard\n"
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

    # also when no flow loads far enough for the DAG file to read the schedule files
    for name in ("good", "badcron", "badtz"):
        (folder / f"{name}.json").write_text(json.dumps({"summary": name, "value": {"modules": 1}}))
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert f"{folder / 'lost.schedule.yaml'}:2: error: invalid YAML" in captured.err
    assert "0 valid, 3 invalid, 1 invalid schedule file(s)" in captured.out
    (folder / "good.json").write_text(json.dumps({"summary": "good", "value": {"modules": []}}))

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


def _workspace_to_migrate(root: Path) -> Path:
    """A Windmill git-sync workspace mixing flows that run here and flows that do not."""
    import yaml

    folder = root / "f" / "mig"
    folder.mkdir(parents=True)
    (root / "wmill.yaml").write_text("defaultTs: bun\n")

    def flow(name: str, *modules: dict[str, Any]) -> None:
        document = {"summary": name, "value": {"modules": list(modules)}}
        (folder / f"{name}.flow").mkdir()
        (folder / f"{name}.flow" / "flow.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    def raw(step_id: str, language: str, content: str) -> dict[str, Any]:
        return {
            "id": step_id,
            "value": {"type": "rawscript", "language": language, "content": content, "input_transforms": {}},
        }

    py = raw("a", "python3", "def main(db, key):\n    return 1\n")
    py["value"]["input_transforms"] = {
        "db": {"type": "static", "value": "$res:f/mig/db"},
        "key": {"type": "javascript", "expr": "variable('f/mig/key')"},
    }
    (folder / "db.resource.yaml").write_text("resource_type: postgresql\nvalue: {}\n")
    flow("py", py)
    flow("deno", raw("a", "deno", "export function main() { return 1 }\n"))
    (folder / "shell.nu").write_text("def main [] { 1 }\n")
    flow("nu", {"id": "a", "value": {"type": "script", "path": "f/mig/shell", "input_transforms": {}}})
    flow("agent", {"id": "a", "value": {"type": "aiagent", "tools": [], "input_transforms": {}}})
    flow(
        "hub", {"id": "a", "value": {"type": "script", "path": "hub/101/demo/double", "input_transforms": {}}}
    )
    flow("gone", {"id": "a", "value": {"type": "script", "path": "f/mig/nothing", "input_transforms": {}}})
    flow("timed", raw("a", "python3", "def main():\n    return 1\n"))
    _schedule(folder, "timed", "f/mig/timed", tz="Mars/Olympus")
    (folder / "lost.schedule.yaml").write_text("schedule: [unclosed\n")
    approval = {"id": "b", "value": {"type": "identity"}, "suspend": {"required_events": 1}}
    # Inside a while-loop, which runs in one task: no approval task can wait there.
    loop = {"type": "whileloopflow", "modules": [approval], "skip_failures": False}
    flow("approval", {"id": "l", "value": loop, "stop_after_if": {"expr": "true"}})
    (folder / "broken.flow").mkdir()
    (folder / "broken.flow" / "flow.yaml").write_text("summary: broken\nvalue:\n  modules: [\n")
    return folder


def test_check_reports_what_of_a_workspace_runs_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_openflow.spec.languages import missing_runtime

    folder = _workspace_to_migrate(tmp_path)
    deno_runs = missing_runtime("deno") is None

    assert main(["check", str(tmp_path), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    flows = {flow["path"]: flow for flow in report["flows"]}
    names = ("agent", "approval", "broken", "deno", "gone", "hub", "nu", "py", "timed")
    assert sorted(flows) == [f"f/mig/{n}" for n in names]
    assert flows["f/mig/py"]["runs"] and not flows["f/mig/py"]["blockers"]
    assert flows["f/mig/py"]["needs"] == [
        "Connection f__mig__db (Windmill resource f/mig/db, in the workspace)",
        "Variable f__mig__key (Windmill variable f/mig/key, not in the workspace)",
    ]
    assert flows["f/mig/hub"]["runs"]  # downloaded when the step runs: a note, not a blocker
    [note] = flows["f/mig/hub"]["notes"]
    assert note["file"] == "f/mig/hub.flow/flow.yaml" and note["line"] is not None
    assert "hub script 'hub/101/demo/double' is not vendored" in note["message"]
    assert flows["f/mig/deno"]["runs"] is deno_runs

    def blocker(path: str) -> dict[str, Any]:
        assert not flows[path]["runs"]
        found = flows[path]["blockers"][0]
        assert isinstance(found["line"], int), found
        if found["kind"] != "schedule":
            assert found["file"] == f"{path}.flow/flow.yaml", found
        return found

    nu = blocker("f/mig/nu")
    assert nu["kind"] == "language not supported" and "'nu'" in nu["message"]
    assert nu["json_path"] == "value.modules[0].value.path"
    agent = blocker("f/mig/agent")
    assert agent["kind"] == "unsupported module kind" and "AI agent" in agent["message"]
    gone = blocker("f/mig/gone")
    assert gone["kind"] == "missing script" and "'f/mig/nothing' not found" in gone["message"]
    approval = blocker("f/mig/approval")
    assert approval["kind"] == "approval in an unsupported place"
    assert approval["json_path"] == "value.modules[0].value.modules[0].suspend"
    timed = blocker("f/mig/timed")
    assert timed == {
        "kind": "schedule",
        "file": "f/mig/timed.schedule.yaml",
        "line": 2,
        "json_path": "timezone",
        "message": timed["message"],
        "hint": timed["hint"],
    }
    assert "Mars/Olympus" in timed["message"]
    [lost] = report["schedule_files"]
    assert lost["file"] == "f/mig/lost.schedule.yaml" and lost["line"] == 2
    broken = blocker("f/mig/broken")
    assert broken["kind"] == "invalid document" and "YAML" in broken["message"]
    totals = report["totals"]
    assert totals["flows"] == 9 and totals["run"] == 2 + deno_runs
    assert totals["blocked"] == 7 - deno_runs
    assert totals["broken_schedule_files"] == 1
    assert totals["blockers"]["language not supported"] == 1
    assert totals["blockers"]["unsupported module kind"] == 1
    assert totals["hub_scripts_not_vendored"] == 1

    assert main(["check", str(tmp_path)]) == 1
    markdown = capsys.readouterr().out
    assert "| flow | file | runs here | blockers | notes | needs in Airflow |" in markdown
    assert "| f/mig/py | f/mig/py.flow/flow.yaml | yes |  |  | Connection f__mig__db (" in markdown
    nu_line = (
        f"language not supported: `f/mig/nu.flow/flow.yaml:{nu['line']}` script 'f/mig/shell' (shell.nu)"
    )
    assert nu_line in markdown
    assert f"**Totals**: 9 flows, {2 + deno_runs} run here, {7 - deno_runs} blocked." in markdown
    assert "- `f/mig/lost.schedule.yaml:2` invalid YAML" in markdown

    # every flow runs: exit 0
    for name in ("agent", "approval", "broken", "gone", "nu", "timed", *([] if deno_runs else ["deno"])):
        shutil.rmtree(folder / f"{name}.flow")
    for name in ("timed", "lost"):
        (folder / f"{name}.schedule.yaml").unlink()
    assert main(["check", str(tmp_path)]) == 0
    assert main(["check", str(tmp_path / "nowhere")]) == 2


def test_check_does_not_import_airflow(tmp_path: Path) -> None:
    _workspace_to_migrate(tmp_path)
    code = (
        "import sys; from airflow_openflow.cli import main; "
        "rc = main(['check', '--format', 'json', sys.argv[1]]); "
        "assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules), 'airflow'; "
        "sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["totals"]["flows"] == 9
