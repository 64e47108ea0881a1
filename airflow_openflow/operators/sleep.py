"""``sleep`` after a step: a deferrable wait, so no worker slot is held while the flow waits
(a short one waits in the worker)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import InputTransform


def sleep_or_defer(seconds: float, log: Any, step_id: str) -> Any:
    """The trigger a task defers on to wait ``seconds`` without holding a worker slot; or None
    after a short sleep done in the worker (a deferral that ends sooner than ``SETTLE_S`` can
    make Airflow 3.3.2 fail the resumed task, see triggers/waits.py)."""
    import time

    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    from airflow_openflow.triggers.waits import SETTLE_S

    if seconds <= SETTLE_S:
        log.info(
            "step %s: sleeping %g s (in the worker: a short wait) before the next step", step_id, seconds
        )
        time.sleep(seconds)
        return None
    log.info("step %s: sleeping %g s (deferred) before the next step", step_id, seconds)
    moment = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=seconds)
    return DateTimeTrigger(moment=moment)


class FlowSleepOperator(BaseOperator):
    """Waits the step's ``sleep`` after the step, before the next step starts (spec 2).

    The task ``<step>_sleep``. Evaluates ``sleep`` (seconds; an expression sees ``result`` = the
    step's result) and defers on a ``DateTimeTrigger`` until then, so no worker slot is held while
    the flow waits; a wait of at most ``SETTLE_S`` seconds is done in the worker (a shorter
    deferral can make Airflow 3.3.2 fail the resumed task, see triggers/waits.py).

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
        self.log.info("step %s: sleep over", self.plan.step_id)
