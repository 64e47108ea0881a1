"""One OpenFlow step as one Airflow task."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    DownstreamTasksSkipped,
)

from airflow_openflow.runtime.plan import OUTCOME_KEY, StepPlan
from airflow_openflow.spec.model import FlowModule


class StepFailed(AirflowException):
    """A step failed; Airflow retries it if retries are left."""


class OpenFlowStepOperator(BaseOperator):
    """Runs one OpenFlow step (``rawscript``, ``script``, ``identity``) as one Airflow task.

    What the step does when it runs (input transforms, ``skip_if``, ``stop_after_if``,
    ``continue_on_error``, ``mock``, ``retry_if``, error objects) is ``runtime/step.py``, shared by
    every execution path; this operator runs it inside the task and ends the task in the state
    that shows the outcome: success; skipped (``skip_if``); an early stop, which marks every later
    step skipped; a failure Airflow retries (``StepFailed``, while the step's ``retry`` and
    ``retry_if`` allow one) or one it must not retry (``AirflowFailException``).

    ``return_value`` is the step's result (what ``results.<id>`` reads; the error object when the
    step failed); ``openflow_outcome`` says how the step ended, for the flow's final task.

    The operators of containers (loops, branches, sub-flows) and of the preprocessor subclass this
    one: they take the same ``module`` and ``plan``, and say which arguments they add.

    :param module: The step, as the parsed flow document holds it (``spec.model.FlowModule``).
    :param plan: The step's place in the compiled flow (``runtime.plan.StepPlan``): the flow it
        belongs to, whose result is its ``previous_result``, which steps ``results`` may read,
        which tasks an early stop skips.
    """

    # Nothing to render: ``module`` and ``plan`` are parsed models, not strings, and a step's
    # inputs are OpenFlow expressions (JavaScript, evaluated at run time), not Jinja.
    template_fields: Sequence[str] = ()
    ui_color = "#dbe9f6"

    def __init__(self, *, module: FlowModule, plan: StepPlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.module = module
        self.plan = plan

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.step import run_step

        ctx = AirflowStepContext(context, self.plan)
        return self.finish(context, run_step(self.module, ctx))

    def finish(self, context: Any, outcome: Any) -> Any:
        """Record the outcome in XCom and end the task in the state that shows it."""
        from airflow_openflow.runtime.outcomes import OutcomeKind

        ti = context["ti"]
        ti.xcom_push(key=OUTCOME_KEY, value=outcome.kind.value)
        if outcome.message:
            self.log.info("step %s: %s", self.plan.step_id, outcome.message)

        kind = outcome.kind
        if kind in (OutcomeKind.SUCCESS, OutcomeKind.MOCKED):
            return outcome.result
        if kind is OutcomeKind.CONTINUED_ERROR:
            self.log.warning("step %s failed; continuing: %s", self.plan.step_id, _brief(outcome.result))
            return outcome.result
        if kind in (OutcomeKind.STOPPED, OutcomeKind.STOPPED_SKIPPED) and not self.plan.later_task_ids:
            return outcome.result  # nothing to skip (inside a loop iteration the next step checks)
        # The remaining outcomes end the task with an exception, which skips the automatic push.
        ti.xcom_push(key="return_value", value=outcome.result)
        if kind in (OutcomeKind.SKIPPED, OutcomeKind.CONTAINER_ENDED):
            raise AirflowSkipException(outcome.message)
        if kind in (OutcomeKind.STOPPED, OutcomeKind.STOPPED_SKIPPED):
            # Listing every later step (not only direct ones) keeps them skipped whatever their
            # trigger rules; the final task still runs (all_done) and reports the stop.
            raise DownstreamTasksSkipped(tasks=list(self.plan.later_task_ids))
        message = f"step {self.plan.step_id} failed: {_brief(outcome.result)}"
        if kind is OutcomeKind.ERROR_STOP or not outcome.retryable:
            raise AirflowFailException(message)
        raise StepFailed(message)


def _brief(result: Any) -> str:
    error = result.get("error") if isinstance(result, dict) else None
    if isinstance(error, dict):
        stack = error.get("stack")
        text = f"{error.get('name')}: {error.get('message')}"
        return f"{text}\n{stack}" if stack else text
    return json.dumps(result, default=str)[:2000]
