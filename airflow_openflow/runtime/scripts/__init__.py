"""Script runners for ``rawscript`` steps, one per supported language.

This package imports neither Airflow nor a JavaScript engine.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any, Final

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.runtime.scripts.bash import run_bash
from airflow_openflow.runtime.scripts.python import run_python

__all__ = ["SUPPORTED_LANGUAGES", "run_bash", "run_python", "run_script"]

SUPPORTED_LANGUAGES: Final = ("python3", "bash")


def run_script(
    language: str,
    content: str,
    args: Mapping[str, Any],
    *,
    step_id: str,
    workdir: pathlib.Path,
    timeout_s: float | None = None,
) -> Any:
    """Run a rawscript's ``content`` with its evaluated ``args``; return the step result.

    Raises :class:`StepError` (the step's error object in ``.error``) when the script fails or
    runs longer than ``timeout_s``.
    """
    if language == "python3":
        return run_python(content, args, step_id=step_id, workdir=workdir, timeout_s=timeout_s)
    if language == "bash":
        return run_bash(content, args, step_id=step_id, workdir=workdir, timeout_s=timeout_s)
    raise StepError(
        "NotSupported",
        f"rawscript language {language!r} is not supported; supported: {', '.join(SUPPORTED_LANGUAGES)}",
        step_id=step_id,
    )
