"""Run a ``bash`` rawscript as a child process, the Windmill way (conformance README "Bash steps").

* Arguments are positional. The signature comes from lines ``name="$N"`` (also ``name=$N``,
  ``name="${N}"``, ``name="${N:-default}"``); argument ``name`` becomes ``$N``: a string as is,
  other JSON as its compact JSON text, a missing / null value as ``""``.
* The script runs as ``/bin/bash -e script.sh args...`` in ``workdir`` with stdin closed. Its
  stdout and stderr are copied line by line to this process's stdout / stderr (the task log).
* Result: the parsed ``./result.json`` when the script wrote a non-empty one, else the last
  non-empty stdout line, trimmed, as a string (``None`` without output).
* A non-zero exit fails the step: ``ExecutionErr`` / ``ExitCode: <n>, last lines of output: ...``.

This module imports neither Airflow nor a JavaScript engine.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any, Final

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.runtime.scripts.child_process import run_child

__all__ = ["bash_argv", "bash_signature", "run_bash"]

BASH: Final = "/bin/bash"
SCRIPT_NAME: Final = "script.sh"
RESULT_FILE: Final = "result.json"

_ARG_LINE = re.compile(
    r"""^[ \t]*(?:(?:export|local|declare|readonly)[ \t]+)?([A-Za-z_]\w*)="""
    r"""(?:"\$(\d+)"|\$(\d+)|"\$\{(\d+)(?::?[-=?+][^}]*)?\}"|\$\{(\d+)(?::?[-=?+][^}]*)?\})"""
    r"""[ \t]*;?[ \t]*(?:\#.*)?$""",
    re.MULTILINE,
)


def bash_signature(content: str) -> dict[int, str]:
    """Position -> argument name, from the script's ``name="$N"`` lines (first one wins)."""
    positions: dict[int, str] = {}
    for m in _ARG_LINE.finditer(content):
        number = int(next(g for g in m.groups()[1:] if g is not None))
        if number >= 1:
            positions.setdefault(number, m.group(1))
    return positions


def bash_argv(content: str, args: Mapping[str, Any]) -> list[str]:
    """The positional arguments ``$1..$n`` for ``args``."""
    positions = bash_signature(content)
    if not positions:
        return []
    return [_arg_text(args.get(positions[i])) if i in positions else "" for i in range(1, max(positions) + 1)]


def _arg_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def run_bash(
    content: str,
    args: Mapping[str, Any],
    *,
    step_id: str,
    workdir: pathlib.Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
) -> Any:
    """Run the script; return its result (see module docstring) or raise :class:`StepError`.

    ``env`` is added to (and overrides) the inherited environment.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / SCRIPT_NAME
    script.write_text(content, encoding="utf-8")
    argv = [BASH, "-e", SCRIPT_NAME, *bash_argv(content, args)]
    child_env = dict(os.environ)
    if env:
        child_env.update(env)
    code, output = run_child(
        argv, workdir=workdir, env=child_env, step_id=step_id, what="bash", timeout_s=timeout_s
    )

    if code != 0:
        raise StepError(
            "ExecutionErr",
            f"ExitCode: {code}, last lines of output:\n{output.tail_text()}",
            step_id=step_id,
        )
    result_file = workdir / RESULT_FILE
    if result_file.is_file():
        text = result_file.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            try:
                return json.loads(text)
            except ValueError as exc:
                raise StepError(
                    "SerializationError",
                    f"./{RESULT_FILE} is not valid JSON ({exc}); write JSON there or print the result",
                    step_id=step_id,
                ) from None
    return output.last_line
