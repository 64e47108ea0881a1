"""Run a ``python3`` rawscript in the current process (the Airflow task), the Windmill way.

The input transforms are ``main``'s keyword arguments; the result is the JSON of its return value
(spec §4.1, conformance README "Python steps"). The script runs in-process: it has what the worker
has (its interpreter, packages, environment), and its prints go straight to the task log.

This module imports neither Airflow nor a JavaScript engine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import inspect
import linecache
import os
import pathlib
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterator, Mapping
from typing import Any

from airflow_openflow.runtime.errors import StepError, exception_text

__all__ = ["run_python"]


def run_python(
    content: str,
    args: Mapping[str, Any],
    *,
    step_id: str,
    workdir: pathlib.Path,
    module_name: str = "openflow_step",
    timeout_s: float | None = None,
) -> Any:
    """Execute ``content`` as a fresh module and return the JSON-compatible result of ``main(**args)``.

    Raises :class:`StepError` (with ``step_id`` in the error object) when the script does not compile,
    has no ``main``, lacks a required argument, raises, or returns something that is not JSON.
    """
    filename = f"<step {step_id}>"
    try:
        code = compile(content, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno else ""
        raise StepError(
            "SyntaxError",
            f"{exc.msg}{where}",
            stack="".join(traceback.format_exception_only(type(exc), exc)),
            step_id=step_id,
        ) from None

    # Registered so tracebacks (and inspect.getsource) show the script's lines; the file never exists.
    linecache.cache[filename] = (len(content), None, content.splitlines(keepends=True), filename)
    module = types.ModuleType(module_name)
    module.__file__ = filename
    if threading.current_thread() is not threading.main_thread():
        # Steps of parallel branches / iterations run in threads of one task: the working
        # directory and sys.modules are process-wide, so each thread keeps the task's cwd and
        # registers its module under a name of its own.
        module_name = f"{module_name}_{threading.get_ident()}"
        module.__name__ = module_name
    own_cwd = threading.current_thread() is threading.main_thread()
    previous_module = sys.modules.get(module_name)
    previous_cwd = os.getcwd()
    streams = sys.stdout, sys.stderr  # a script may replace or close them; the task keeps its own
    sys.modules[module_name] = module  # dataclasses, pickle, typing need the module to be importable
    try:
        if own_cwd:
            os.chdir(workdir)
        try:
            exec(code, module.__dict__)
            main = module.__dict__.get("main")
            if not callable(main):
                raise StepError(
                    "ScriptError",
                    "the script defines no main function: a python3 step needs `def main(...)`",
                    step_id=step_id,
                )
            call_args, call_kwargs = _bind_arguments(main, args, step_id)
            with _time_limit(timeout_s, step_id):
                result = main(*call_args, **call_kwargs)
                if inspect.iscoroutine(result):  # ``async def main`` is allowed, as in Windmill
                    result = asyncio.run(result)
        except StepError:
            raise
        except (Exception, SystemExit) as exc:
            # SystemExit too: a script calling sys.exit() must fail its step, not end the task.
            raise _script_failure(exc, filename, step_id) from None
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # None, closed, or an object without flush
                    stream.flush()
            sys.stdout, sys.stderr = streams
    finally:
        if own_cwd:
            os.chdir(previous_cwd)
        if previous_module is None:
            sys.modules.pop(module_name, None)
        else:
            sys.modules[module_name] = previous_module
        linecache.cache.pop(filename, None)
    return to_json_compatible(result, step_id=step_id)


class _StepTimeout(BaseException):
    """Raised into the script by the timer; a BaseException so ``except Exception`` in user code
    cannot swallow it."""


@contextlib.contextmanager
def _time_limit(timeout_s: float | None, step_id: str) -> Iterator[None]:
    """Interrupt ``main`` after ``timeout_s`` (a step's ``timeout``). Signals only reach the main
    thread, so a step running in a parallel branch's thread is not interrupted."""
    if not timeout_s or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _StepTimeout

    # Airflow's execution_timeout uses the same timer: when it would fire first, leave it alone;
    # otherwise take the timer and give back what remains of Airflow's afterwards.
    pending, _ = signal.getitimer(signal.ITIMER_REAL)
    if pending and pending <= timeout_s:
        yield
        return
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    except _StepTimeout:
        raise StepError(
            "TimeoutError", f"step {step_id} exceeded its timeout of {timeout_s:g} s", step_id=step_id
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if pending:
            signal.setitimer(signal.ITIMER_REAL, max(pending - (time.monotonic() - started), 0.001))


def _bind_arguments(main: Any, args: Mapping[str, Any], step_id: str) -> tuple[list[Any], dict[str, Any]]:
    """Pass the args ``main`` accepts; drop the others unless it takes ``**kwargs``."""
    try:
        signature = inspect.signature(main)
    except (TypeError, ValueError):  # a builtin or C callable: no signature, pass everything
        return [], dict(args)
    positional: list[Any] = []
    kwargs: dict[str, Any] = {}
    consumed: set[str] = set()
    takes_var_kwargs = False
    positional_gap = False  # a defaulted positional-only parameter was left out
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            takes_var_kwargs = True
            continue
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if param.name in args and not (positional_gap and param.kind is inspect.Parameter.POSITIONAL_ONLY):
            consumed.add(param.name)
            if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                positional.append(args[param.name])
            else:
                kwargs[param.name] = args[param.name]
        elif param.default is inspect.Parameter.empty:
            raise StepError(
                "TypeError",
                f"main() is missing the required argument {param.name!r}: no input transform sets it",
                step_id=step_id,
            )
        elif param.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional_gap = True  # later positional-only parameters keep their defaults
    if takes_var_kwargs:
        kwargs.update({k: v for k, v in args.items() if k not in consumed})
    return positional, kwargs


def _script_failure(exc: BaseException, filename: str, step_id: str) -> StepError:
    """Windmill's error object: class name, str(exc), and a traceback starting in the script."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next  # drop this runner's own frames
    stack = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    print(stack, file=sys.stderr, end="")  # the task log shows the traceback as it happened
    return StepError(type(exc).__name__, exception_text(exc), stack=stack, step_id=step_id)


def to_json_compatible(value: Any, *, step_id: str | None = None) -> Any:
    """A JSON-compatible copy: tuples -> lists, datetime/date/time -> ISO text, bytes -> base64.

    Anything else that JSON cannot represent (sets, objects, NaN, a structure that contains itself
    or is nested deeper than Python's recursion limit...) is a :class:`StepError`.
    """
    try:
        return _convert(value, "the result", step_id)
    except StepError:
        raise
    except RecursionError:
        raise StepError(
            "SerializationError",
            "the result is nested too deeply or contains itself; return JSON data (a tree, not a cycle)",
            step_id=step_id,
        ) from None
    except Exception as exc:  # a Mapping / sequence of the script's whose methods raise
        raise StepError(
            "SerializationError",
            f"the result could not be read: {type(exc).__name__}: {exception_text(exc)}",
            step_id=step_id,
        ) from None


def _convert(value: Any, where: str, step_id: str | None) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)  # also plain-ifies int subclasses such as IntEnum
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _not_json(f"{value!r}", where, step_id, hint="JSON has no NaN or infinity")
        return float(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[_convert_key(key, where, step_id)] = _convert(item, f"{where}[{key!r}]", step_id)
        return out
    if isinstance(value, (list, tuple)):
        return [_convert(item, f"{where}[{i}]", step_id) for i, item in enumerate(value)]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise _not_json(type(value).__qualname__, where, step_id)


def _convert_key(key: Any, where: str, step_id: str | None) -> str:
    # Same key rules as json.dumps.
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    if isinstance(key, (int, float)):
        return str(int(key)) if isinstance(key, int) else repr(key)
    raise _not_json(f"key of type {type(key).__qualname__}", where, step_id)


def _not_json(what: str, where: str, step_id: str | None, *, hint: str = "") -> StepError:
    extra = f" ({hint})" if hint else ""
    return StepError(
        "SerializationError",
        f"{where} is not JSON-serializable: {what}{extra}; return JSON data "
        "(dict, list, str, int, float, bool, None; tuples, dates and bytes are converted)",
        step_id=step_id,
    )
