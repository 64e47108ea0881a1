"""``sleep`` after a step: a deferrable wait, so no worker slot is held while the flow waits
(one of under a second waits in the worker)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import InputTransform

#: Sleeps shorter than this are done in the worker: a deferral's round trip costs more.
IN_WORKER_SLEEP_S = 1.0


def sleep_or_defer(seconds: float, log: Any, step_id: str) -> Any:
    """The trigger a task defers on to wait ``seconds`` without holding a worker slot; or None
    after a sleep of under a second done in the worker.

    The trigger ends the task itself when the time is up (``end_from_trigger``): no worker resumes
    it, so the wait can be of any length. (A resumed task could be failed by Airflow 3.3.2 when its
    trigger fires before the scheduler has processed the exit of the workload that deferred:
    apache/airflow#72716.) What the task has to record, it records before deferring."""
    import time

    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    if seconds < IN_WORKER_SLEEP_S:
        log.info("step %s: sleeping %g s (in the worker) before the next step", step_id, seconds)
        time.sleep(seconds)
        return None
    log.info("step %s: sleeping %g s (deferred) before the next step", step_id, seconds)
    moment = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=seconds)
    return DateTimeTrigger(moment=moment, end_from_trigger=True)


class FlowSleepOperator(BaseOperator):
    """Waits the step's ``sleep`` after the step, before the next step starts (spec 2).

    The task ``<step>_sleep``. Evaluates ``sleep`` (seconds; an expression sees ``result`` = the
    step's result) and defers on a ``DateTimeTrigger`` that ends the task when the time is up, so no
    worker slot is held while the flow waits (``sleep_or_defer``).

    :param sleep: The step's ``sleep`` (``spec.model.InputTransform``): a static number of seconds
        or an OpenFlow expression.
    :param plan: A plan whose ``step_id`` is the step that sleeps (``runtime.plan.StepPlan``): the
        expression's ``result`` is that step's result.
    """

    # Nothing to render: ``sleep`` is a parsed transform (a JavaScript expression, not Jinja).
    template_fields: Sequence[str] = ()
    ui_color = "#fdf3d8"

    def __init__(self, *, sleep: InputTransform, plan: StepPlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sleep = sleep
        self.plan = plan

    def execute(self, context: Any) -> None:
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.step_context import sleep_seconds

        seconds = sleep_seconds(self.sleep, AirflowStepContext(context, self.plan))
        if seconds <= 0:
            return
        trigger = sleep_or_defer(seconds, self.log, self.plan.step_id)
        if trigger is not None:
            self.defer(trigger=trigger, method_name="resume")

    def resume(self, context: Any, event: Any = None) -> None:
        # Reached in process (dag.test() runs the trigger inline, then resumes), and by tasks
        # deferred by an earlier release; a deployment's trigger ends the task itself.
        self.log.info("step %s: sleep over", self.plan.step_id)
