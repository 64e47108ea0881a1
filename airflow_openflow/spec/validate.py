"""``validate_flow``: every problem of a document, for the CLI. Never raises for a bad document."""

from __future__ import annotations

import os

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.loader import FlowInput, load_flow_result
from airflow_openflow.spec.support import check_supported


def validate_flow(
    source: FlowInput, *, root: str | os.PathLike[str] | None = None, supported: bool = True
) -> list[Problem]:
    """Errors first, then warnings. With ``supported`` (the default) a document that loads is also
    checked against what this release can execute (:func:`check_supported`)."""
    result = load_flow_result(source, root=root)
    problems = [*result.errors, *result.warnings]
    if result.flow is not None and supported:
        problems.extend(check_supported(result.flow))
    return [p for p in problems if p.severity == "error"] + [p for p in problems if p.severity != "error"]
