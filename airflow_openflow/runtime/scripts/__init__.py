"""Script runners for ``rawscript`` steps, one module per language, registered in ``RUNNERS``.

A runner is imported only when a step of its language runs. This package imports neither Airflow
nor a JavaScript engine.
"""

from __future__ import annotations

import importlib
import pathlib
from collections.abc import Mapping
from typing import Any, Final, Protocol

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.spec.languages import runnable_languages, unsupported_language_message

__all__ = ["RUNNERS", "SUPPORTED_LANGUAGES", "ScriptRunner", "run_script"]


class ScriptRunner(Protocol):
    def __call__(
        self,
        content: str,
        args: Mapping[str, Any],
        *,
        step_id: str,
        workdir: pathlib.Path,
        timeout_s: float | None = None,
    ) -> Any: ...


#: language -> "module:function" of its runner; spec/languages.py says which languages run.
RUNNERS: Final[dict[str, str]] = {
    "python3": "airflow_openflow.runtime.scripts.python:run_python",
    "bash": "airflow_openflow.runtime.scripts.bash:run_bash",
    "deno": "airflow_openflow.runtime.scripts.typescript:run_deno",
    "bun": "airflow_openflow.runtime.scripts.typescript:run_bun",
    "nativets": "airflow_openflow.runtime.scripts.typescript:run_nativets",
    "go": "airflow_openflow.runtime.scripts.go:run_go",
    "postgresql": "airflow_openflow.runtime.scripts.sql:run_postgresql",
    "mysql": "airflow_openflow.runtime.scripts.sql:run_mysql",
}

SUPPORTED_LANGUAGES: Final = runnable_languages()


def _runner(language: str) -> ScriptRunner | None:
    target = RUNNERS.get(language)
    if target is None:
        return None
    module_name, _, function = target.partition(":")
    runner: ScriptRunner = getattr(importlib.import_module(module_name), function)
    return runner


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
    runner = _runner(language) if language in SUPPORTED_LANGUAGES else None
    if runner is None:
        raise StepError("NotSupported", unsupported_language_message(language), step_id=step_id)
    return runner(content, args, step_id=step_id, workdir=workdir, timeout_s=timeout_s)
