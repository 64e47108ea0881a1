"""Error values shared by the worker-side runtime (expressions and script runners).

Windmill represents a failed step by its result ``{"error": {"name", "message", "stack"?, ...}}``
(spec §4.1, §5). The runners raise :class:`StepError` carrying exactly that object so the caller
can store it as the step's result; expression failures raise :class:`ExpressionError`, which the
caller turns into a step failure or a flow-level error depending on where the expression sits
(spec §3.5).

This module imports neither Airflow nor a JavaScript engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, overload

__all__ = ["ExpressionError", "StepError", "error_object", "exception_text"]


def error_object(
    name: str,
    message: str,
    *,
    stack: str | None = None,
    step_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build Windmill's error result ``{"error": {"name", "message", "stack"?, "step_id"?, ...}}``.

    ``stack`` and ``step_id`` are left out when ``None`` (cases check the exact key set of some
    error objects, e.g. EarlyStopError without ``result``).
    """
    err: dict[str, Any] = {"name": name, "message": message}
    if stack is not None:
        err["stack"] = stack
    if step_id is not None:
        err["step_id"] = step_id
    err.update(extra)
    return {"error": err}


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when the exception's own ``__str__`` fails (a hostile script
    can raise such an exception; its error object must still be built)."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: str() failed>"


class StepError(Exception):
    """A script step failed; ``.error`` is the step's result ``{"error": {...}}``.

    Two ways to build one: ``StepError(error_object(...))`` wraps a ready error object, and
    ``StepError("IndexError", "list index out of range", stack=..., step_id=...)`` builds it.
    """

    @overload
    def __init__(self, error: Mapping[str, Any], /) -> None: ...

    @overload
    def __init__(
        self,
        name: str,
        message: str,
        /,
        *,
        stack: str | None = None,
        step_id: str | None = None,
        **extra: Any,
    ) -> None: ...

    def __init__(
        self,
        name_or_error: str | Mapping[str, Any],
        message: str | None = None,
        /,
        *,
        stack: str | None = None,
        step_id: str | None = None,
        **extra: Any,
    ) -> None:
        if isinstance(name_or_error, Mapping):
            inner = name_or_error.get("error")
            if not isinstance(inner, Mapping):
                raise TypeError("StepError(obj) needs an error object {'error': {...}}")
            self.error: dict[str, Any] = {"error": dict(inner)}
        else:
            self.error = error_object(name_or_error, message or "", stack=stack, step_id=step_id, **extra)
        super().__init__(f"{self.name}: {self.message}")

    @property
    def name(self) -> str:
        return str(self.error["error"].get("name", "Error"))

    @property
    def message(self) -> str:
        return str(self.error["error"].get("message", ""))

    @property
    def step_id(self) -> str | None:
        value = self.error["error"].get("step_id")
        return None if value is None else str(value)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor arguments do not survive the default Exception pickling.
        return (StepError, (self.error,))


class ExpressionError(Exception):
    """A JavaScript expression (transform, predicate, iterator...) could not be evaluated.

    ``name`` is the JS error name (``TypeError``, ``ReferenceError``...) or one of
    ``ExpressionTimeout`` / ``ExpressionMemoryLimit``; ``message`` is the bare JS message.
    ``str(exc)`` is the full Windmill-style text naming the expression.
    """

    def __init__(self, expr: str, name: str, message: str, *, stack: str | None = None) -> None:
        self.expr = expr
        self.name = name
        self.message = message
        self.stack = stack
        super().__init__(self.full_message)

    @property
    def full_message(self) -> str:
        return f"Error during isolated evaluation of expression `{self.expr}`: {self.message}"

    def error_object(self, *, step_id: str | None = None) -> dict[str, Any]:
        """The failed step's result, e.g. for an input transform that throws (spec §3.5)."""
        return error_object(self.name, self.full_message, step_id=step_id)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_expression_error, (self.expr, self.name, self.message, self.stack))


def _rebuild_expression_error(expr: str, name: str, message: str, stack: str | None) -> ExpressionError:
    return ExpressionError(expr, name, message, stack=stack)
