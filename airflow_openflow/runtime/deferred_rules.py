"""A sub-flow step's rules answered where the step waits for its child run (the triggerer).

Where resuming the step in a worker costs a wait (the LocalExecutor, apache/airflow#72716;
``triggers/waits.py``), the trigger answers the step's rule itself when that answer lets the flow go
on as usual: a ``stop_after_if`` that is false on a success (the step succeeds with the child's
result), a ``retry_if`` that is true on a failure with attempts left (Airflow retries the step).
Any other answer (a stop, no retry) or a rule that cannot be answered cleanly (it throws, a value it
reads is not there) resumes the step in a worker, which evaluates the rule again and applies it
with its usual handling: the outcome is the same either way.

The rule sees what it sees in the worker (runtime/step.py): the flow input, ``flow_env``, the
extra names (``resume`` ...), the previous step's result, the results of the steps before (read
when the rule asks for them), variables and resources; those taken when the step defers travel
with the trigger, so they are bounded (``MAX_STORED_BYTES``). Knows nothing of Airflow.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_openflow.runtime.expressions import evaluate_predicate
from airflow_openflow.runtime.step_context import StepContextDefaults, StepRunContext, StepScope
from airflow_openflow.spec.model import FlowModule

log = logging.getLogger(__name__)

#: Largest JSON size of the values a trigger takes along to answer a rule (stored with the trigger
#: in the metadata database); beyond it the step resumes in a worker to answer it.
MAX_STORED_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class DeferredRules:
    """A sub-flow step's rules and the values they read that are known when the step defers."""

    stop_after_if: str | None
    retry_if: str | None
    flow_input: Any
    previous_result: Any
    flow_env: Mapping[str, Any]
    extra: Mapping[str, Any]
    readable_step_ids: tuple[str, ...]

    def stored(self) -> dict[str, Any] | None:
        """As trigger keyword arguments (JSON), or None when not JSON or over ``MAX_STORED_BYTES``."""
        value = dataclasses.asdict(self)
        value["readable_step_ids"] = list(self.readable_step_ids)
        try:
            size = len(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError):
            return None
        return value if size <= MAX_STORED_BYTES else None

    @classmethod
    def from_stored(cls, value: Mapping[str, Any]) -> DeferredRules:
        return cls(**{**value, "readable_step_ids": tuple(value["readable_step_ids"])})


def deferred_rules(
    module: FlowModule, ctx: StepRunContext, readable_step_ids: tuple[str, ...], *, retry_if_applies: bool
) -> DeferredRules | None:
    """What a trigger needs to answer the step's ``stop_after_if`` (and ``retry_if`` when a failure
    would still have attempts left), or None when it has no such rule."""
    stop = module.stop_after_if.expr if module.stop_after_if is not None else None
    retry_if = (module.retry.retry_if if module.retry is not None else None) if retry_if_applies else None
    if not stop and not retry_if:
        return None
    return DeferredRules(
        stop_after_if=stop or None,
        retry_if=retry_if or None,
        flow_input=ctx.flow_input,
        previous_result=ctx.previous_result() if retry_if else None,
        flow_env=dict(ctx.flow_env),
        extra=dict(ctx.extra_names or {}),
        readable_step_ids=readable_step_ids,
    )


@dataclass(frozen=True)
class _WaitingStepContext(StepContextDefaults):
    """The ``StepRunContext`` of a step waiting in the triggerer: what its rules read, from
    ``DeferredRules`` and from the readers the trigger gives."""

    rules: DeferredRules
    read_result: Callable[[str], Any]
    read_variable: Callable[[str], Any]
    read_resource: Callable[[str], Any]
    is_last_attempt: bool = False  # a rule answered here is never a last attempt's (see waits.py)

    @property
    def flow_input(self) -> Any:
        return self.rules.flow_input

    @property
    def flow_env(self) -> Mapping[str, Any]:
        return self.rules.flow_env

    @property
    def extra_names(self) -> Mapping[str, Any]:  # type: ignore[override]  # a property here
        return self.rules.extra

    def previous_result(self) -> Any:
        return self.rules.previous_result

    def result_of(self, step_id: str) -> Any:
        return self.read_result(step_id) if step_id in self.rules.readable_step_ids else None

    def variable(self, path: str) -> Any:
        return self.read_variable(path)

    def resource(self, path: str) -> Any:
        return self.read_resource(path)


def flow_goes_on(
    rules: DeferredRules,
    *,
    succeeded: bool,
    result: Any,
    read_result: Callable[[str], Any],
    variable: Callable[[str], Any],
    resource: Callable[[str], Any],
) -> bool:
    """Whether the child's end, under the step's rule, lets the flow go on as usual: a success whose
    ``stop_after_if`` is false, or a failure whose ``retry_if`` is true. False when the rule says
    otherwise, cannot be answered here, or there is no rule for this end."""
    expr = rules.stop_after_if if succeeded else rules.retry_if
    if not expr:
        return False
    scope = StepScope(_WaitingStepContext(rules, read_result, variable, resource))
    try:
        answer = evaluate_predicate(
            expr, scope.of_own_result(result) if succeeded else scope.of_failure(result)
        )
    except Exception as exc:  # the worker evaluates it again and handles the error as usual
        log.info("rule `%s` not answered where the step waits (%s); the step resumes in a worker", expr, exc)
        return False
    return (not answer) if succeeded else answer
