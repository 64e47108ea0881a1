"""What an OpenFlow expression can see: ``EvalScope``, and ``NOT_SET`` for an undefined ``result``.

Shared by the public API (runtime/expressions.py) and the evaluator (runtime/expression_engine.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

DEFAULT_TIME_LIMIT_S: Final = 10.0
DEFAULT_MEMORY_LIMIT_BYTES: Final = 64 * 1024 * 1024


class _NotSet:
    """Type of :data:`NOT_SET`: marks ``EvalScope.result`` as undefined (not in scope)."""

    _instance: _NotSet | None = None

    def __new__(cls) -> _NotSet:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_SET"

    def __reduce__(self) -> str:
        return "NOT_SET"


NOT_SET: Final = _NotSet()


@dataclass
class EvalScope:
    """What an expression can see. ``results`` is called only for the step ids the expression reads
    (returning ``None`` for unknown / not-yet-run ids); ``variable`` / ``resource`` likewise. A
    callback may raise :class:`StepError` for a user-level failure (e.g. variable not found): the
    expression sees a JS ``Error`` it can catch. Any other exception propagates out of ``evaluate``."""

    flow_input: Any
    previous_result: Any
    results: Callable[[str], Any]
    flow_env: Mapping[str, Any] = field(default_factory=dict)
    result: Any = NOT_SET  # defined only for predicates / stop / iterator expressions
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. resume, resumes, approvers, error
    variable: Callable[[str], Any] | None = None
    resource: Callable[[str], Any] | None = None
