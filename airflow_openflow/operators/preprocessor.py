"""The flow's ``preprocessor_module``: turns a trigger event into the flow input."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from airflow_openflow.operators.step import OpenFlowStepOperator
from airflow_openflow.runtime.airflow_context import AirflowStepContext


def trigger_event(dag_run: Any) -> Any:
    """The event of a run started by an external trigger, else None (spec 1.2: the preprocessor
    runs only for triggers, never for runs from the UI or a schedule).

    - ``conf["__openflow_event"]``: the event a caller of Airflow's REST API (a webhook relay, a
      queue consumer) passes, e.g. ``{"kind": "webhook", "body": {...}}``;
    - an asset-triggered run (Airflow's event-driven scheduling): ``{"kind": "asset", "events":
      [...]}``, the asset events that started it.
    """
    from airflow_openflow.runtime.inputs import TRIGGER_EVENT_KEY

    conf = getattr(dag_run, "conf", None) or {}
    if TRIGGER_EVENT_KEY in conf:
        return conf[TRIGGER_EVENT_KEY]
    run_type = getattr(dag_run, "run_type", None)
    if getattr(run_type, "value", run_type) == "asset_triggered":
        events = getattr(dag_run, "consumed_asset_events", None) or []
        return {"kind": "asset", "events": [_plain(event) for event in events]}
    return None


def _plain(event: Any) -> Any:
    dump = getattr(event, "model_dump", None)
    return dump(mode="json") if dump is not None else event


class _PreprocessorContext(AirflowStepContext):
    """The preprocessor's input is ``{"event": <the trigger event>}``, not the run's conf."""

    def __init__(self, context: Mapping[str, Any], plan: Any, event: Any) -> None:
        super().__init__(context, plan)
        self._event = event

    @cached_property
    def run_input(self) -> Any:
        return {"event": self._event}


class PreprocessorOperator(OpenFlowStepOperator):
    """Runs the flow's ``preprocessor_module`` on the event that started the run (spec 1.2).

    When the run was started by a trigger event (``conf["__openflow_event"]``, or asset events),
    the preprocessor runs with ``{"event": <the event>}`` as its input, and its result (an object,
    else ``{"value": result}``) becomes every step's ``flow_input``. Otherwise (a run from the UI or
    a schedule) the task ends skipped and the flow input is the run's ``conf``, as in Windmill,
    where the preprocessor runs only for triggers.

    Takes the arguments of ``OpenFlowStepOperator`` (``module``: the preprocessor) and no others.
    """

    ui_color = "#e8e3f5"

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.outcomes import OutcomeKind, StepOutcome
        from airflow_openflow.runtime.step import run_step

        event = trigger_event(context.get("dag_run"))
        if event is None:
            message = "the run was not started by a trigger event; the flow input is the run's conf"
            return self.finish(context, StepOutcome(OutcomeKind.SKIPPED, None, message))
        if not isinstance(event, Mapping) or not isinstance(event.get("kind"), str):
            error = {
                "error": {
                    "name": "InvalidTriggerEvent",
                    "message": "conf['__openflow_event'] must be an object with a string 'kind', e.g. "
                    '{"kind": "webhook", "body": {...}}',
                }
            }
            return self.finish(
                context, StepOutcome(OutcomeKind.FAILED, error, "invalid trigger event", retryable=False)
            )
        self.log.info("preprocessor: trigger event of kind %r", event["kind"])
        return self.finish(context, run_step(self.module, _PreprocessorContext(context, self.plan, event)))
