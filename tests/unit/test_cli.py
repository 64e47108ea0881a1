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
