"""The flow's final task: decides the flow's status and result, and so the DAG run's state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_openflow.runtime.plan import OUTCOME_KEY, STATUS_KEY, FlowInfo


class FlowResultOperator(BaseOperator):
    """Runs after every step (``all_done``). Pushes the flow result as ``return_value`` and the
    status as ``openflow_status``; fails when the flow failed, so the run's state is the flow's."""

    template_fields: Sequence[str] = ()
    ui_color = "#e8e3f5"

    def __init__(self, *, step_ids: Sequence[str], flow: FlowInfo, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step_ids = list(step_ids)
        self.flow = flow

    def execute(self, context: Any) -> None:
        from airflow_openflow.runtime.inputs import flow_input_from
        from airflow_openflow.runtime.step import OutcomeKind, flow_verdict

        ti = context["ti"]
        kinds: list[Any] = ti.xcom_pull(task_ids=self.step_ids, key=OUTCOME_KEY) if self.step_ids else []
        steps = [
            (step_id, OutcomeKind(k) if k else None) for step_id, k in zip(self.step_ids, kinds, strict=True)
        ]
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        verdict = flow_verdict(
            steps,
            lambda step_id: ti.xcom_pull(task_ids=step_id, key="return_value"),
            flow_input_from(conf, self.flow.schema),
        )
        ti.xcom_push(key="return_value", value=verdict.result)
        ti.xcom_push(key=STATUS_KEY, value=verdict.status)
        self.log.info("flow %s: %s (%s)", self.flow.dag_id, verdict.status, verdict.message)
        if verdict.status == "failure":
            raise AirflowFailException(f"flow failed: {verdict.message}")
        if verdict.skipped:
            raise AirflowSkipException(verdict.message)
