"""The command line: validate (without Airflow), render."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    (tmp_path / "list.json").write_text("[1, 2]")
    assert main(["validate", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "1 valid, 1 invalid" in captured.out and "list.json" in captured.err


def test_validate_does_not_import_airflow() -> None:
    code = (
        "import sys; from airflow_openflow.cli import main; rc = main(['validate', '-q', sys.argv[1]]); "
        "assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules), 'airflow'; "
        "assert 'quickjs' not in sys.modules; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


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
