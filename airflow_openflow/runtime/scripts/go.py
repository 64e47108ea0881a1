"""Run a ``go`` rawscript with the worker's Go toolchain, the Windmill way (docs/languages.md, "Go").

* The script is Windmill's form: ``package inner`` with ``func main(<params>) (<result>, error)``.
* Arguments by name: the step's arguments are matched to ``main``'s parameter names, in order; each
  is decoded from its JSON into the parameter's Go type (``encoding/json`` rules). A missing or
  ``null`` argument is the type's zero value.
* Result: the JSON (``encoding/json``) of ``main``'s first return value. When the last return value
  is a non-nil ``error``, the step fails with its ``Error()`` text.
* How: the script is copied as package ``inner`` (``func main`` renamed ``Main``) of a throw-away
  module in ``workdir``, next to a generated ``package main`` that reads the arguments, calls it
  through ``reflect`` and writes the outcome to a file; ``go build`` then runs the binary with stdin
  closed. Its stdout and stderr go to the task log. The build and the run share ``timeout_s``.
* Imports: the standard library always works. Other modules are fetched by ``go mod tidy`` through
  the Go module proxy (``GOPROXY``), so only where the worker reaches it; ``//require <module>
  <version>`` comment lines pin versions, as in Windmill.

This module imports neither Airflow nor a JavaScript engine.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from typing import Any, Final

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.runtime.scripts.child_process import run_child

__all__ = ["go_parameter_names", "run_go"]

GO: Final = "go"
ARGS_FILE: Final = "args.json"
OUTCOME_FILE: Final = "outcome.json"
_MAIN = re.compile(r"^func\s+main\s*\(", re.MULTILINE)
_PACKAGE = re.compile(r"^package\s+\w+", re.MULTILINE)
_REQUIRE = re.compile(r"^//\s*require\s+(\S+)\s+(\S+)\s*$", re.MULTILINE)
_IMPORT_PATH = re.compile(r'"([^"\s]+)"')
_IMPORT_BLOCK = re.compile(r"^import\s*(?:\(([^)]*)\)|(\w+\s+)?(\"[^\"]+\"))", re.MULTILINE)
_IDENT = re.compile(r"[A-Za-z_]\w*")

# The generated entry point: decode each argument into main's parameter type, call it, write the
# outcome. Names come from the Python side (reflect does not know parameter names).
_WRAPPER: Final = """package main

import (
\t"encoding/json"
\t"fmt"
\t"os"
\t"reflect"

\tinner "openflowstep/inner"
)

func fail(kind string, message string) {
\tout, _ := json.Marshal(map[string]interface{}{"error": map[string]string{"name": kind, "message": message}})
\t_ = os.WriteFile(%(outcome)s, out, 0o600)
\tos.Exit(1)
}

func main() {
\tdefer func() {
\t\tif r := recover(); r != nil {
\t\t\tfail("panic", fmt.Sprint(r))
\t\t}
\t}()
\tnames := []string{%(names)s}
\tvar args map[string]json.RawMessage
\traw, err := os.ReadFile(%(args)s)
\tif err != nil {
\t\tfail("ArgumentError", err.Error())
\t}
\tif err := json.Unmarshal(raw, &args); err != nil {
\t\tfail("ArgumentError", err.Error())
\t}
\tfn := reflect.ValueOf(inner.Main)
\tkind := fn.Type()
\tif kind.NumIn() != len(names) || kind.IsVariadic() {
\t\tfail("SignatureError", "main's parameters could not be read")
\t}
\tcall := make([]reflect.Value, kind.NumIn())
\tfor i := 0; i < kind.NumIn(); i++ {
\t\tvalue := reflect.New(kind.In(i))
\t\tif text, ok := args[names[i]]; ok && string(text) != "null" {
\t\t\tif err := json.Unmarshal(text, value.Interface()); err != nil {
\t\t\t\tfail("ArgumentError", fmt.Sprintf("argument %%q: %%v", names[i], err))
\t\t\t}
\t\t}
\t\tcall[i] = value.Elem()
\t}
\tresults := fn.Call(call)
\tif n := len(results); n > 0 && kind.Out(n-1).Implements(reflect.TypeOf((*error)(nil)).Elem()) {
\t\tif failure, _ := results[n-1].Interface().(error); failure != nil {
\t\t\tfail("Error", failure.Error())
\t\t}
\t\tresults = results[:n-1]
\t}
\tvar result interface{}
\tif len(results) > 0 {
\t\tresult = results[0].Interface()
\t}
\tout, err := json.Marshal(map[string]interface{}{"result": result})
\tif err != nil {
\t\tfail("SerializationError", err.Error())
\t}
\tif err := os.WriteFile(%(outcome)s, out, 0o600); err != nil {
\t\tfail("SerializationError", err.Error())
\t}
}
"""


def go_parameter_names(content: str) -> list[str]:
    """The names of ``func main``'s parameters, in order (``a, b string`` gives both)."""
    match = _MAIN.search(content)
    if match is None:
        return []
    depth, start = 1, match.end()
    end = start
    while end < len(content) and depth:
        char = content[end]
        depth += char in "([{"
        depth -= char in ")]}"
        end += 1
    inside = content[start : end - 1]
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in inside:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if "".join(current).strip():
        parts.append("".join(current))
    names = []
    for part in parts:
        ident = _IDENT.match(part.strip())
        if ident is not None:
            names.append(ident.group(0))
    return names


def _imports(content: str) -> list[str]:
    found: list[str] = []
    for block, _, single in _IMPORT_BLOCK.findall(content):
        found.extend(_IMPORT_PATH.findall(block) if block else [single.strip('"')])
    return found


def _needs_modules(content: str) -> bool:
    """Whether the script imports something outside the standard library (a dotted first part)."""
    return any("." in path.split("/")[0] for path in _imports(content))


def run_go(
    content: str,
    args: Mapping[str, Any],
    *,
    step_id: str,
    workdir: pathlib.Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
) -> Any:
    """Build and run the script; return its result (see the module docstring) or raise
    :class:`StepError`."""
    go = shutil.which(GO)
    if go is None:
        raise StepError(
            "NotSupported",
            "Go steps need the Go toolchain ('go' on the worker's PATH); install it (Debian: golang-go)",
            step_id=step_id,
        )
    if _MAIN.search(content) is None:
        raise StepError("SyntaxError", "the script has no 'func main(...)'", step_id=step_id)
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    _write_module(workdir, content, go_parameter_names(content))
    (workdir / ARGS_FILE).write_text(json.dumps(dict(args), default=str), encoding="utf-8")
    child_env = _go_env(env)

    def remaining() -> float | None:
        return None if timeout_s is None else max(timeout_s - (time.monotonic() - started), 0.1)

    steps: list[tuple[list[str], str | None]] = [([go, "build", "-o", "step", "."], "go build")]
    if _needs_modules(content):
        steps.insert(0, ([go, "mod", "tidy"], "go mod tidy"))
    for argv, phase in [*steps, ([str(workdir / "step")], None)]:
        _process(argv, workdir, child_env, remaining(), step_id, phase, timeout_s)
    return _outcome(workdir, step_id)


def _write_module(workdir: pathlib.Path, content: str, names: list[str]) -> None:
    inner = _PACKAGE.sub("package inner", content, count=1) if _PACKAGE.search(content) else content
    inner = _MAIN.sub("func Main(", inner, count=1)
    (workdir / "inner").mkdir(exist_ok=True)
    (workdir / "inner" / "inner.go").write_text(inner, encoding="utf-8")
    requires = "".join(f"require {module} {version}\n" for module, version in _REQUIRE.findall(content))
    (workdir / "go.mod").write_text(f"module openflowstep\n\ngo 1.18\n\n{requires}", encoding="utf-8")
    wrapper = _WRAPPER % {
        "names": ", ".join(json.dumps(name) for name in names),
        "args": json.dumps(str(workdir / ARGS_FILE)),
        "outcome": json.dumps(str(workdir / OUTCOME_FILE)),
    }
    (workdir / "main.go").write_text(wrapper, encoding="utf-8")


def _go_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The inherited environment; build and module caches under the temp folder when the worker's
    user has no home to keep them (Go refuses to build without a cache)."""
    env = dict(os.environ)
    home = env.get("HOME")
    cache_root = pathlib.Path(tempfile.gettempdir()) / "openflow-go"
    if not home or not os.access(home, os.W_OK):
        env.setdefault("GOCACHE", str(cache_root / "build"))
        env.setdefault("GOPATH", str(cache_root / "path"))
    env.setdefault("GOFLAGS", "-mod=mod")
    env.setdefault("GOTOOLCHAIN", "local")  # never download another toolchain
    if extra:
        env.update(extra)
    return env


def _process(
    argv: list[str],
    workdir: pathlib.Path,
    env: Mapping[str, str],
    timeout: float | None,
    step_id: str,
    phase: str | None,
    timeout_s: float | None,
) -> None:
    """Run one command, its output to the task log; raise :class:`StepError` when it fails (the
    script's own failure is read from the outcome file by :func:`_outcome`)."""
    code, output = run_child(
        argv, workdir=workdir, env=env, step_id=step_id, what=argv[0], timeout_s=timeout_s, wait_s=timeout
    )
    if code != 0 and phase is not None:
        raise StepError(
            "ExecutionErr",
            f"{phase} failed (exit code {code}):\n{output.tail_text()}",
            step_id=step_id,
        )
    if code != 0 and not (workdir / OUTCOME_FILE).is_file():
        raise StepError(
            "ExecutionErr",
            f"ExitCode: {code}, last lines of output:\n{output.tail_text()}",
            step_id=step_id,
        )


def _outcome(workdir: pathlib.Path, step_id: str) -> Any:
    try:
        outcome = json.loads((workdir / OUTCOME_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StepError(
            "ExecutionErr",
            f"the Go program ended without a result (os.Exit in main?): {exc.__class__.__name__}",
            step_id=step_id,
        ) from None
    if "error" in outcome:
        error = outcome["error"]
        raise StepError(str(error.get("name", "Error")), str(error.get("message", "")), step_id=step_id)
    return outcome.get("result")
