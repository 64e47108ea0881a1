"""The evaluator behind runtime/expressions.py: one evaluation of an expression in QuickJS, in one
or more passes (the module docstring of runtime/expressions.py says why passes), with the JavaScript
prelude of a pass (expression_prelude.js, a package resource). The expression's text and the JSON
crossing into QuickJS: runtime/expression_text.py.

Imports QuickJS only when an expression is evaluated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, Final

from airflow_openflow.runtime import expression_reuse
from airflow_openflow.runtime.errors import ExpressionError, StepError
from airflow_openflow.runtime.expression_scope import NOT_SET, EvalScope
from airflow_openflow.runtime.expression_text import (
    FAST_MEMBER,
    IDENT_FULL,
    MAY_THROW_NULL,
    OBJECT_PROTO_NAMES,
    RESERVED_NAMES,
    Key,
    dumps,
    fmt_number,
    js_truthy,
    json_copy,
    literal_refs,
    parse_report,
    to_function_body,
)
from airflow_openflow.spec.parse_reader import strip_legacy_import

_STACK_BYTES: Final = 1024 * 1024  # QuickJS's own default; deep recursion -> RangeError
_MAX_PASSES: Final = 1000  # each pass adds at least one fetched value; this only stops pathological code
_REPORT_TIME_S: Final = 1.0  # reading the outcome of a pass: string concatenation only


# ---------------------------------------------------------------------------------------------
# The JavaScript side of a pass. Input arrives as JSON text in ``__wm_in``; the prelude evaluates to
# a function the host calls to read the outcome.
#
# The expression runs in the same realm as this prelude, so it can replace globals (``JSON = null``),
# patch prototypes (``Object.prototype.toJSON = ...``, an index setter on ``Array.prototype``,
# ``Promise.prototype.then = ...``) or throw from getters. Two rules keep that from reaching the host:
#
# * Everything the prelude calls after user code has started is captured first (``JSON.parse`` /
#   ``stringify``, ``Error``, ``String``, ``Reflect.apply``, ``Object.hasOwn``,
#   ``Promise.prototype.then``, ``Array.prototype.join``), and called without ``.call`` / ``.bind``
#   (``bind`` would also cost ~20k instructions per capture, per pass).
# * The report is never an object that goes through ``JSON.stringify``: it is text built from
#   primitive strings (``JSON.stringify`` of a primitive string looks up no ``toJSON``) and
#   booleans, held in closure variables that user code cannot reach, and read through the function
#   the prelude returns (no global name to shadow). So the host always gets the shape it expects:
#   one JSON line (settled, ok, error, misses), a newline, the value's JSON text.
#
# The *value* is the captured native ``JSON.stringify`` of what the expression returned, with
# JavaScript's own meaning, toJSON included: Windmill serializes an expression's value with
# ``JSON.stringify`` too, so ``new Date(0)`` is its ISO text and ``Object.prototype.toJSON = () =>
# 'x'`` makes the value ``"x"`` there as here. What stringify runs of user code (a toJSON, a getter,
# a Proxy trap) runs under the same time budget, and whatever it throws (or a cycle, a BigInt) is
# the expression's error. A structural serializer that never calls toJSON was considered and not
# taken: it would change values (dates, classes with toJSON) and cost a JavaScript walk per value
# instead of one native call, while the only thing that needs protecting is the report.

_PRELUDE: Final = (
    resources.files("airflow_openflow.runtime").joinpath("expression_prelude.js").read_text(encoding="utf-8")
)
_FRESH_PRELUDE: Final = _PRELUDE + "(null)"  # a fresh context per pass (reused ones: expression_reuse)

# Reused contexts (runtime/expression_reuse.py says what keeps them safe): an expression its scan
# accepts runs in this thread's reused context; the outcome is taken from there only if the
# expression succeeded (or read values not fetched yet). Anything else runs that pass, and the
# passes after it, in a fresh context as before, within what is left of the time budget.


# ---------------------------------------------------------------------------------------------
# One evaluation (one or more passes)


class Evaluation:
    """One evaluation of an expression: passes until every read hits, then its value."""

    def __init__(
        self, expr: str, scope: EvalScope, time_limit_s: float, memory_limit_bytes: int, *, predicate: bool
    ) -> None:
        self.expr = expr
        self.scope = scope
        self.time_limit_s = time_limit_s
        self.memory_limit_bytes = memory_limit_bytes
        self.predicate = predicate
        self.source = strip_legacy_import(expr)  # the loader strips it too: this is for other callers
        self.budget = time_limit_s  # JavaScript time left, over all passes
        self.entries: dict[Key, str] = {}  # fetched values, as JSON entry text
        self.host_errors: dict[Key, BaseException] = {}  # prefetch failures, raised if really read

    # -- driver -----------------------------------------------------------------------------

    def run(self) -> Any:
        if not self.source.strip():
            return self._finish(None)
        fast = self._fast_path()
        if fast is not None:
            return self._finish(fast[0])
        body = to_function_body(self.source)
        head = self._input_head(body)
        self._prefetch()
        warm = self._warm_context()
        for _ in range(_MAX_PASSES):
            report: dict[str, Any] | None = None
            failure: ExpressionError | None = None
            if warm is not None:
                report = self._run_warm_pass(warm, head)
                if report is None:
                    warm = None
            if report is None:
                report, failure = self._run_pass(head)
            misses = [(str(k), str(v)) for k, v in (report or {}).get("misses", [])]
            for key in misses:
                if key in self.host_errors:
                    raise self.host_errors[key]
            new = [key for key in dict.fromkeys(misses) if key not in self.entries]
            if new:
                for key in new:
                    self._fetch(key, deferred=False)
                continue
            return self._outcome(report, failure)
        raise ExpressionError(
            self.expr, "Error", f"the expression reads more than {_MAX_PASSES} distinct values"
        )

    def _finish(self, value: Any) -> Any:
        return js_truthy(value) if self.predicate else value

    def _fast_path(self) -> tuple[Any] | None:
        """Plain lookups need no JavaScript (Windmill does the same for ``flow_input.x``)."""
        src = self.source.strip()
        scope = self.scope
        if src == "flow_input":
            return (json_copy(scope.flow_input, self.expr, "flow_input"),)
        if src == "previous_result":
            return (json_copy(scope.previous_result, self.expr, "previous_result"),)
        m = FAST_MEMBER.match(src)
        if m is None:
            return None
        base, name = m.groups()
        if base == "results":
            try:
                value = scope.results(name)
            except StepError as exc:
                raise ExpressionError(self.expr, exc.name, exc.message) from exc
            return (json_copy(value, self.expr, f"results.{name}"),)
        container = scope.flow_input if base == "flow_input" else scope.flow_env
        if not isinstance(container, Mapping):
            return None  # let JavaScript say what reading a member of it means
        if name in container:
            return (json_copy(container[name], self.expr, f"{base}.{name}"),)
        if name in OBJECT_PROTO_NAMES:
            return None
        return (None,)

    def _outcome(self, report: dict[str, Any] | None, failure: ExpressionError | None) -> Any:
        if failure is not None:
            raise failure
        if report is None:
            raise ExpressionError(self.expr, "InternalError", "the JavaScript engine did not report a result")
        if not report.get("settled"):
            raise ExpressionError(
                self.expr,
                "Error",
                "the expression never produced a value (it awaits a promise that never settles)",
            )
        if report.get("ok"):
            value = self._read_value(report.get("json"))
            return bool(value) if self.predicate else value
        err = report.get("error") or {}
        name, message = str(err.get("name") or "Error"), str(err.get("message") or "")
        if name == "InternalError" and message == "out of memory":
            raise self._memory_error()
        if name == "__null__":
            # Out of memory with too little left to make the error object, QuickJS throws null.
            # Code can throw null itself, but not without writing one of these words.
            if not MAY_THROW_NULL.search(self.source):
                raise self._memory_error()
            name = "Error"
        raise ExpressionError(self.expr, name, message, stack=err.get("stack") or None)

    def _read_value(self, text: Any) -> Any:
        """The value's JSON text (always valid: the engine's own stringify made it) as Python data.
        What Python cannot hold (nesting deeper than its recursion limit) is the expression's error."""
        if not isinstance(text, str):
            raise ExpressionError(self.expr, "InternalError", "the JavaScript engine reported no value")
        try:
            return json.loads(text)
        except RecursionError:
            raise ExpressionError(
                self.expr, "RangeError", "the value is nested too deeply to leave the JavaScript engine"
            ) from None
        except ValueError as exc:
            raise ExpressionError(
                self.expr, "InternalError", f"the value could not be read back from JavaScript: {exc}"
            ) from None

    # -- values fetched from the host -------------------------------------------------------

    def _callback(self, kind: str) -> Callable[[str], Any] | None:
        if kind == "results":
            return self.scope.results
        return self.scope.variable if kind == "variable" else self.scope.resource

    def _prefetch(self) -> None:
        for key in literal_refs(self.source):
            if self._callback(key[0]) is not None:
                self._fetch(key, deferred=True)

    def _fetch(self, key: Key, *, deferred: bool) -> None:
        """Fetch one value into ``entries``. A StepError becomes a JS Error at the read; any other
        exception propagates now, or, for a prefetch (``deferred``), only if the code reads it."""
        kind, name = key
        callback = self._callback(kind)
        if callback is None:  # unreachable: the JS side throws before asking
            self.entries[key] = json.dumps(
                {"e": {"name": "Error", "message": f"{kind}() is not available here"}}
            )
            return
        try:
            value = callback(name)
        except StepError as exc:
            self.entries[key] = json.dumps({"e": {"name": exc.name, "message": exc.message}})
            return
        except Exception as exc:
            if not deferred:
                raise
            self.host_errors[key] = exc
            self.entries[key] = "{}"
            return
        label = f"results.{name}" if kind == "results" else f"{kind}({name!r})"
        self.entries[key] = '{"v":' + dumps(value, self.expr, label) + "}"

    # -- one pass ---------------------------------------------------------------------------

    def _input_head(self, body: str) -> str:
        """The pass input without the fetched values (serialized once, reused by every pass)."""
        scope = self.scope
        names: dict[str, Any] = {
            "flow_input": scope.flow_input,
            "previous_result": scope.previous_result,
            "flow_env": dict(scope.flow_env),
            "params": {},
        }
        if scope.result is not NOT_SET:
            names["result"] = scope.result
        for key, value in scope.extra.items():
            if not IDENT_FULL.match(key) or key in RESERVED_NAMES:
                raise ValueError(f"EvalScope.extra: {key!r} cannot be a name in expression scope")
            names[key] = value
        head = {
            "body": body,
            "predicate": self.predicate,
            "has_variable": scope.variable is not None,
            "has_resource": scope.resource is not None,
            "names": names,
        }
        text = dumps(head, self.expr, "the expression scope")
        return text[:-1]  # without the closing brace: tables follow

    def _input_text(self, head: str) -> str:
        tables: dict[str, list[str]] = {"results": [], "variable": [], "resource": []}
        for (kind, name), entry in self.entries.items():
            tables[kind].append(json.dumps(name) + ":" + entry)
        parts = ",".join(f'"{kind}":{{{",".join(items)}}}' for kind, items in tables.items())
        return f'{head},"tables":{{{parts}}}}}'

    def _warm_context(self) -> expression_reuse.WarmContext | None:
        assigned = expression_reuse.assigned_names(self.source)
        if assigned is None:
            return None
        warm = expression_reuse.warm_context(_PRELUDE, _STACK_BYTES)
        if warm is None or not assigned.isdisjoint(warm.global_names):
            return None  # a built-in global is read-only there; assigning it must not silently fail
        return warm

    def _run_warm_pass(self, warm: expression_reuse.WarmContext, head: str) -> dict[str, Any] | None:
        """One pass in the reused context: its report if the expression succeeded or missed a value
        (then the next pass runs there too), else None (this pass runs again in a fresh context)."""
        ctx = warm.ctx
        report: dict[str, Any] | None = None
        try:
            ctx.set_memory_limit(self.memory_limit_bytes)
            report_fn = self._timed(ctx, lambda: warm.start(self._input_text(head)))
            while self._timed(ctx, ctx.execute_pending_job):
                pass
            ctx.set_time_limit(_REPORT_TIME_S)
            report = parse_report(report_fn())
        except Exception:
            report = None  # time or memory limit, an uncaught job, the binding: start afresh
        except BaseException:  # e.g. KeyboardInterrupt: jobs of this pass may still be queued
            expression_reuse.discard(warm)
            raise
        if report is None or report.get("clean") is not True:
            expression_reuse.discard(warm)
            return None
        if report.get("ok") and report.get("settled"):
            return report
        misses = [(str(k), str(v)) for k, v in report.get("misses", [])]
        if any(key not in self.entries for key in misses):
            return report
        err = report.get("error") or {}
        if err.get("name") in ("InternalError", "__null__"):  # e.g. out of memory
            expression_reuse.discard(warm)
        return None

    def _run_pass(self, head: str) -> tuple[dict[str, Any] | None, ExpressionError | None]:
        import quickjs  # lazily: never at DAG-parse time

        failure: ExpressionError | None = None
        report_fn: Any = None
        try:
            ctx = quickjs.Context()
            ctx.set_memory_limit(self.memory_limit_bytes)
            ctx.set_max_stack_size(_STACK_BYTES)
            ctx.set("__wm_in", self._input_text(head))
            report_fn = self._timed(ctx, lambda: ctx.eval(_FRESH_PRELUDE))
            while self._timed(ctx, ctx.execute_pending_job):
                pass
        except ExpressionError as exc:
            failure = exc
        except quickjs.JSException as exc:
            failure = self._engine_failure(exc, quickjs.StackOverflow)
        except Exception as exc:  # the binding itself failed (MemoryError, a value it cannot convert)
            failure = ExpressionError(
                self.expr, "InternalError", f"the JavaScript engine failed: {type(exc).__name__}: {exc}"
            )
        report: dict[str, Any] | None = None
        if callable(report_fn):  # else the prelude itself was interrupted; the failure says why
            try:
                ctx.set_time_limit(_REPORT_TIME_S)
                report = parse_report(report_fn())
            except Exception:
                report = None  # e.g. the heap is still full; the failure above says why
        return report, failure

    def _timed(self, ctx: Any, call: Callable[[], Any]) -> Any:
        """Run one engine call within what is left of the time budget."""
        if self.budget <= 0:
            raise self._timeout_error()
        ctx.set_time_limit(self.budget)
        start = time.monotonic()
        try:
            return call()
        finally:
            self.budget -= time.monotonic() - start

    def _engine_failure(self, exc: Exception, stack_overflow: type[Exception]) -> ExpressionError:
        if isinstance(exc, stack_overflow):
            return ExpressionError(self.expr, "RangeError", "Maximum call stack size exceeded")
        head = str(exc).split("\n    at ", 1)[0].strip()
        if head == "InternalError: interrupted":
            return self._timeout_error()
        if "out of memory" in head:
            return self._memory_error()
        name, sep, message = head.partition(": ")
        if sep and IDENT_FULL.match(name):
            return ExpressionError(self.expr, name, message.strip())
        return ExpressionError(self.expr, "Error", head or "uncaught exception")

    def _timeout_error(self) -> ExpressionError:
        return ExpressionError(
            self.expr,
            "ExpressionTimeout",
            f"expression exceeded its {fmt_number(self.time_limit_s)} s time limit",
        )

    def _memory_error(self) -> ExpressionError:
        mib = fmt_number(self.memory_limit_bytes / (1024 * 1024))
        return ExpressionError(
            self.expr, "ExpressionMemoryLimit", f"expression exceeded its {mib} MiB memory limit"
        )
