"""The shared OpenFlow conformance corpus, run through ``airflow_openflow.run_flow``.

Cases live in ``../shared/conformance/cases`` and ``cases-typescript`` beside it (override with
``OPENFLOW_CONFORMANCE_DIR``); their format and the runner contract are in those folders' READMEs.
Cases that need constructs a later issue implements are marked expected-to-fail (strict: they turn
red once they pass, so the mark must then be removed), never skipped.

Each run of a case runs in both modes of ``run_flow`` when the flow can run in process (``-in_process``
and ``-executor``), else through the executor only: results must not depend on the mode.
"""

from __future__ import annotations

import copy
import json
import tempfile
from typing import Any

import pytest

from tests.conformance.matching import check_expectation
from tests.corpus import case_files, missing_message

# Constructs of later issues; a case needing one is expected to fail until that issue lands.
PENDING: dict[str, str] = {
    # Approvals run, but nobody answers them under run_flow, and a step cannot approve itself
    # before its approval task waits (Windmill's pre-approval; see docs/approvals.md).
    "suspend": "approvals: no approver under run_flow, no pre-approval",
}


#: The corpus folders run here: the flow semantics, and the TypeScript steps (deno, bun).
FOLDERS = ("cases", "cases-typescript")


def _cases() -> list[Any]:
    params = []
    for folder in FOLDERS:
        params.extend(_folder_cases(folder))
    return params


def _folder_cases(folder: str) -> list[Any]:
    files = case_files(folder)
    if not files:
        return [pytest.param(None, folder, "auto", id=f"{folder}-missing")]
    params = []
    for path in files:
        case = json.loads(path.read_text(encoding="utf-8"))
        pending = sorted({PENDING[c] for c in _constructs(case["flow"]) if c in PENDING})
        marks = [pytest.mark.xfail(reason="; ".join(pending), strict=True)] if pending else []
        modes = _modes(case["flow"])
        for index, run in enumerate(case["runs"]):
            for mode in modes:
                params.append(pytest.param(case, run, mode, id=f"{path.stem}[{index}]-{mode}", marks=marks))
    return params


def _modes(document: dict[str, Any]) -> list[str]:
    """Both modes when ``run_flow`` can run the flow in process, else the executor only (a case
    whose document is refused: the run says why)."""
    from airflow_openflow.run_modes import planned_mode

    try:
        in_process = planned_mode(document) == "in_process"
    except Exception:
        return ["auto"]
    return ["in_process", "executor"] if in_process else ["executor"]


def _constructs(flow: dict[str, Any]) -> set[str]:
    found: set[str] = set()

    def walk(modules: list[dict[str, Any]]) -> None:
        for module in modules:
            value = module.get("value", {})
            found.add(value.get("type", ""))
            found.update(k for k in module if k not in ("id", "value", "summary"))
            walk(value.get("modules", []))
            for branch in value.get("branches", []):
                walk(branch.get("modules", []))
            walk(value.get("default", []))

    walk(flow["value"]["modules"])
    for special in ("failure_module", "preprocessor_module"):
        if special in flow["value"]:
            found.add(special)
            walk([flow["value"][special]])
    return found


def _with_tmpdir(value: Any, tmpdir: str) -> Any:
    if isinstance(value, str):
        return value.replace("{{TMPDIR}}", tmpdir)
    if isinstance(value, list):
        return [_with_tmpdir(v, tmpdir) for v in value]
    if isinstance(value, dict):
        return {k: _with_tmpdir(v, tmpdir) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("case", "run", "mode"), _cases())
def test_case(case: dict[str, Any] | None, run: dict[str, Any] | str, mode: str) -> None:
    if case is None or isinstance(run, str):
        pytest.fail(missing_message(str(run)))
    import airflow_openflow

    with tempfile.TemporaryDirectory(prefix="openflow-case-") as tmpdir:
        inputs = _with_tmpdir(copy.deepcopy(run["input"]), tmpdir)
        outcome = airflow_openflow.run_flow(case["flow"], inputs, mode=mode)
    check_expectation(outcome.status, outcome.result, run["expect"])
    if mode != "auto":
        assert outcome.mode == mode
