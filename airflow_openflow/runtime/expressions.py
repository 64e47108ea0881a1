"""OpenFlow JavaScript expressions (input transforms, predicates, iterators), evaluated in QuickJS.

Rules (spec §3, conformance README "Expressions"):

* a single expression runs as ``return (<expr>)`` so object literals need no parentheses; text that
  starts with a statement keyword, or has a ``;`` outside strings / template literals / comments, runs
  as a function body and must ``return``;
* the code runs inside an ``async`` function, so ``await`` works; ``undefined`` becomes ``None``;
* names in scope: ``flow_input``, ``previous_result``, ``results`` (lazy), ``flow_env``, ``params``
  (``{}``), ``result`` (predicates / stop / iterator only), the scope's ``extra`` names, and the
  functions ``variable(path)`` / ``resource(path)``;
* values cross the boundary as JSON, so the expression works on copies.

How ``results`` stays lazy. The QuickJS binding refuses to call into Python while a time limit is set
("Can not call into Python with a time limit set"), and a Python exception inside a callback leaves
the context broken. So there are no callbacks: each *pass* runs the expression afresh with the step
results / variables / resources fetched so far. Reading one that is not there yet records a *miss*
and throws; after the pass Python fetches the missed values and runs the expression again. The pass
whose reads all hit is the real evaluation. Ids written literally (``results.a``, ``results["a"]``,
``variable("f/x")``) are fetched before the first pass, so a typical expression needs one pass. Only
ids the expression reads are ever fetched. Expressions are meant to be pure; one that reads a missing
id after doing something observable (nothing is observable from QuickJS: no I/O, no clock-based
effects) is simply re-run.

Where a pass runs. A fresh QuickJS context costs more than a typical evaluation (~0.1 ms to create,
more for its first compilation), so an expression that a conservative scan of its text accepts runs
in a context reused by the thread, whose built-ins are frozen; its outcome there is taken only if it
succeeded, anything else runs the pass again in a fresh context (runtime/expression_reuse.py says
why one expression still cannot change what another sees, and why the value is a fresh context's).

Limits: ``time_limit_s`` bounds the total JavaScript time of all passes (QuickJS counts CPU time of
the process; we also count wall time), ``memory_limit_bytes`` bounds each pass's heap. No file,
network, environment or process access exists in the engine and none is added.

This module imports neither Airflow nor, at import time, QuickJS (it may be imported while a DAG file
is parsed; the engine is only loaded when an expression is evaluated).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_openflow.runtime.errors import ExpressionError
from airflow_openflow.runtime.expression_engine import Evaluation
from airflow_openflow.runtime.expression_scope import (
    DEFAULT_MEMORY_LIMIT_BYTES,
    DEFAULT_TIME_LIMIT_S,
    NOT_SET,
    EvalScope,
)

if TYPE_CHECKING:
    from airflow_openflow.spec.model import InputTransform

__all__ = [
    "DEFAULT_MEMORY_LIMIT_BYTES",
    "DEFAULT_TIME_LIMIT_S",
    "NOT_SET",
    "EvalScope",
    "evaluate",
    "evaluate_predicate",
    "evaluate_transform",
    "evaluate_transforms",
    "resolve_static",
]


# ---------------------------------------------------------------------------------------------
# Public API


def evaluate(
    expr: str,
    scope: EvalScope,
    *,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
) -> Any:
    """Evaluate one OpenFlow JavaScript expression; return its JSON value (``undefined`` -> None).

    Raises :class:`ExpressionError` when the code throws, times out or runs out of memory.
    """
    return Evaluation(expr, scope, time_limit_s, memory_limit_bytes, predicate=False).run()


def evaluate_predicate(
    expr: str,
    scope: EvalScope,
    *,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
) -> bool:
    """Evaluate a predicate with ``Boolean(<expr>)`` semantics (JS truthiness: ``[]`` is true)."""
    return bool(Evaluation(expr, scope, time_limit_s, memory_limit_bytes, predicate=True).run())


def resolve_static(value: Any, scope: EvalScope) -> Any:
    """A ``static`` transform value: passed unchanged (as a copy), except a top-level string
    ``$var:<path>`` / ``$res:<path>``, which becomes the variable / resource value (spec §3.1)."""
    if isinstance(value, str):
        for prefix, kind, fetch in (
            ("$var:", "variable", scope.variable),
            ("$res:", "resource", scope.resource),
        ):
            if value.startswith(prefix):
                if fetch is None:
                    raise ExpressionError(value, "Error", f"{kind}() is not available here")
                return fetch(value[len(prefix) :])
        return value
    # A copy: the script may mutate its argument; the flow document must not change.
    return copy.deepcopy(value)


def evaluate_transform(
    transform: InputTransform,
    scope: EvalScope,
    *,
    name: str | None = None,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
) -> Any:
    """The value of one transform, a static value or a JavaScript expression: the single way every
    transform of a flow is evaluated (arguments, iterators, ``parallelism``, ``sleep``, ``timeout``,
    approval groups). ``name``: the argument it is, for the message of an unsupported kind."""
    if transform.kind == "static":
        return resolve_static(transform.value, scope)
    if transform.kind == "javascript":
        return evaluate(
            transform.expr or "", scope, time_limit_s=time_limit_s, memory_limit_bytes=memory_limit_bytes
        )
    what = f"argument {name!r}" if name is not None else "a transform"
    raise ExpressionError(
        transform.expr or f"<{transform.kind} transform>",
        "NotSupported",
        f"{what}: {transform.kind} transforms are not supported",
    )


def evaluate_transforms(
    transforms: Mapping[str, InputTransform],
    scope: EvalScope,
    *,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
) -> dict[str, Any]:
    """Evaluate all arguments of a step, in document order."""
    return {
        name: evaluate_transform(
            transform, scope, name=name, time_limit_s=time_limit_s, memory_limit_bytes=memory_limit_bytes
        )
        for name, transform in transforms.items()
    }
