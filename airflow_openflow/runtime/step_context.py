"""What a step sees of the run it belongs to: the ``StepRunContext`` every execution path hands to
``run_step`` (runtime/step.py), and the expression scopes built from it.

Knows nothing of Airflow. A context has the required members of ``StepRunContext``; the optional
capabilities (a state store, a ``./shared`` folder, a ``wmill`` backend, the step cache, extra
names) default to "none" in ``StepContextDefaults``, which a context inherits when it lacks some.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from airflow_openflow.runtime.expressions import EvalScope, evaluate_transform
from airflow_openflow.runtime.outcomes import StepOutcome
from airflow_openflow.spec.model import FlowModule, InputTransform

if TYPE_CHECKING:
    from airflow_openflow.runtime.shared_dir import SharedLocation
    from airflow_openflow.runtime.wmill_session import CheckpointStore, WmillBackend


class TaskServices(Protocol):
    """What every step inside one task gets from the task itself, whatever body it runs in."""

    @property
    def flow_env(self) -> Mapping[str, Any]: ...

    def variable(self, path: str) -> Any: ...

    def resource(self, path: str) -> Any: ...

    @property
    def task_state_store(self) -> CheckpointStore | None:
        """The task's state store (kept across tries): loop iteration checkpoints and workflow-as-code
        checkpoints; None where there is none."""

    @property
    def shared_location(self) -> SharedLocation | None:
        """The run's ``./shared`` folder (``same_worker``), else None."""

    def wmill_backend(self, module: FlowModule) -> WmillBackend | None:
        """What a python3 step's ``wmill`` calls use, or None: the SDK is not available."""

    def cache_get(self, key: str) -> tuple[Any] | None:
        """A cached result of the step (``cache_ttl``) as a 1-tuple, or None."""

    def cache_set(self, key: str, result: Any, ttl: float) -> None: ...


class StepRunContext(TaskServices, Protocol):
    """What a step needs from the run it belongs to."""

    @property
    def flow_input(self) -> Any: ...

    @property
    def is_last_attempt(self) -> bool: ...

    @property
    def extra_names(self) -> Mapping[str, Any]:
        """Names beyond the usual ones (spec 3.3): ``resume``, ``error`` and the like."""

    def previous_result(self) -> Any: ...

    def result_of(self, step_id: str) -> Any: ...


class StepContextDefaults:
    """The optional capabilities of a ``StepRunContext``, all absent: no state store, no ``./shared``
    folder, no ``wmill`` backend, no cache, no extra names."""

    extra_names: Mapping[str, Any] = MappingProxyType({})
    shared_location: SharedLocation | None = None
    task_state_store: CheckpointStore | None = None

    def wmill_backend(self, module: FlowModule) -> WmillBackend | None:
        return None

    def cache_get(self, key: str) -> tuple[Any] | None:
        return None

    def cache_set(self, key: str, result: Any, ttl: float) -> None:
        return None


#: How a container runs one step of its bodies (``runtime.step.run_step``).
RunStep = Callable[[FlowModule, StepRunContext], StepOutcome]


@dataclass(slots=True)
class StepScope:
    """Builds expression scopes lazily: the previous result is fetched once, when first needed."""

    ctx: StepRunContext
    _previous: Any = field(default=None)
    _have_previous: bool = False

    def previous(self) -> Any:
        if not self._have_previous:
            self._previous = self.ctx.previous_result()
            self._have_previous = True
        return self._previous

    def build(self, **overrides: Any) -> EvalScope:
        scope = EvalScope(
            flow_input=self.ctx.flow_input,
            previous_result=self.previous(),
            results=self.ctx.result_of,
            flow_env=self.ctx.flow_env,
            variable=self.ctx.variable,
            resource=self.ctx.resource,
            extra=self.ctx.extra_names or {},
        )
        return dataclasses.replace(scope, **overrides) if overrides else scope

    def of_own_result(self, value: Any) -> EvalScope:
        """The scope of what is evaluated on the step's own result (``stop_after_if``, ``sleep``):
        ``result`` and ``previous_result`` are that result (spec 2)."""
        return self.build(result=value, previous_result=value)

    def of_failure(self, error: Any) -> EvalScope:
        """The scope of ``retry_if``: ``result`` is the step's error object, ``previous_result``
        still the step's input."""
        return self.build(result=error)


def static_scope(ctx: TaskServices) -> EvalScope:
    """The scope of a ``static`` transform: it reads variables and resources (``$var:``, ``$res:``)
    and nothing else, so nothing else is fetched for it."""
    return EvalScope(
        flow_input=None,
        previous_result=None,
        results=lambda step_id: None,
        variable=ctx.variable,
        resource=ctx.resource,
    )


def step_scope(ctx: StepRunContext, **overrides: Any) -> EvalScope:
    """The expression scope of a step's context (``result`` and the like as overrides)."""
    return StepScope(ctx).build(**overrides)


_OWN_RESULT_IS_PREVIOUS = object()


def sleep_seconds(
    transform: InputTransform, ctx: StepRunContext, *, result: Any = _OWN_RESULT_IS_PREVIOUS
) -> float:
    """A step's ``sleep``, evaluated after it ran: ``result`` and ``previous_result`` are the
    step's own result (spec 2): ``result``, else ``ctx.previous_result()`` (for a context placed
    after the step). A value that is not a positive number means no sleep."""
    if transform.kind == "static":
        scope = static_scope(ctx)
    else:
        own = ctx.previous_result() if result is _OWN_RESULT_IS_PREVIOUS else result
        scope = StepScope(ctx).of_own_result(own)
    value = evaluate_transform(transform, scope)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return 0.0
