"""The flow's final task: decides the flow's status and result, and so the DAG run's state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_openflow.runtime.plan import OUTCOME_KEY, STATUS_KEY, FlowInfo


class FlowResultOperator(BaseOperator):
    """The flow's final task: decides the flow's status and result from the steps' outcomes.

    The task ``flow_result`` runs after every step (``all_done``). It reads each step's
    ``openflow_outcome`` and result, applies Windmill's rules (a failure, an early stop, the failure
    module's result, a cache hit), pushes the flow result as ``return_value`` and the status as
    ``openflow_status``, and fails when the flow failed (skips when the flow was skipped), so the
    DAG run's state is the flow's. With a flow ``cache_ttl``, it stores a successful result.

    :param step_ids: The task ids whose outcomes decide the flow: the top-level steps in order
        (with the preprocessor and the approval tasks).
    :param flow: The flow-level facts (``runtime.plan.FlowInfo``), e.g. how to read the run's input.
    :param failure_step_id: The task of the flow's ``failure_module``, whose result replaces a
        failed flow's error; None without one.
    :param cache: With a flow ``cache_ttl``: (the ``flow_cache`` task, the flow's version,
        ``cache_ttl`` in seconds); None without one.
    """

    # Nothing to render: task ids and parsed flow facts fixed when the DAG is built.
    template_fields: Sequence[str] = ()
    ui_color = "#e8e3f5"

    def __init__(
        self,
        *,
        step_ids: Sequence[str],
        flow: FlowInfo,
        failure_step_id: str | None = None,
        cache: tuple[str, str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.step_ids = list(step_ids)
        self.flow = flow
        self.failure_step_id = failure_step_id
        self.cache = cache  # (the flow_cache task, the flow version, cache_ttl) with a flow cache_ttl

    def execute(self, context: Any) -> None:
        from airflow_openflow.runtime.airflow_context import run_flow_input
        from airflow_openflow.runtime.outcomes import flow_verdict, outcome_kind, with_failure_module

        ti = context["ti"]
        flow_input = run_flow_input(context, self.flow)
        if self.cache is not None:
            from airflow_openflow.operators.flow_cache import CACHE_HIT

            if ti.xcom_pull(task_ids=self.cache[0], key=OUTCOME_KEY) == CACHE_HIT:
                result = ti.xcom_pull(task_ids=self.cache[0], key="return_value")
                ti.xcom_push(key="return_value", value=result)
                ti.xcom_push(key=STATUS_KEY, value="success")
                self.log.info("flow %s: success (the cached result of an earlier run)", self.flow.dag_id)
                return
        kinds: list[Any] = ti.xcom_pull(task_ids=self.step_ids, key=OUTCOME_KEY) if self.step_ids else []
        steps = [(step_id, outcome_kind(k)) for step_id, k in zip(self.step_ids, kinds, strict=True)]
        verdict = flow_verdict(
            steps,
            lambda step_id: ti.xcom_pull(task_ids=step_id, key="return_value"),
            flow_input,
        )
        if self.failure_step_id is not None:
            handler = self.failure_step_id
            verdict = with_failure_module(
                verdict,
                outcome_kind(ti.xcom_pull(task_ids=handler, key=OUTCOME_KEY)),
                ti.xcom_pull(task_ids=handler, key="return_value"),
            )
        ti.xcom_push(key="return_value", value=verdict.result)
        ti.xcom_push(key=STATUS_KEY, value=verdict.status)
        self.log.info("flow %s: %s (%s)", self.flow.dag_id, verdict.status, verdict.message)
        if self.cache is not None and verdict.status == "success" and not verdict.skipped:
            from airflow_openflow.operators.flow_cache import flow_cache_key
            from airflow_openflow.runtime.cache import store_result

            _, version, ttl = self.cache
            store_result(self.flow.dag_id, flow_cache_key(version, flow_input), verdict.result, ttl)
        if verdict.status == "failure":
            raise AirflowFailException(f"flow failed: {verdict.message}")
        if verdict.skipped:
            raise AirflowSkipException(verdict.message)
