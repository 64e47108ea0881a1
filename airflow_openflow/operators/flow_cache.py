"""The flow's ``cache_ttl``: a first task that looks the run's arguments up in the flow cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import DownstreamTasksSkipped

from airflow_openflow.runtime.plan import OUTCOME_KEY, FlowInfo

#: ``openflow_outcome`` of the cache task: the result came from the cache / the flow must run.
CACHE_HIT = "cache_hit"
CACHE_MISS = "cache_miss"


def flow_cache_key(version: str, flow_input: Any) -> str:
    """Windmill keys the flow cache by the flow's version and the run's arguments (spec 1.2)."""
    import hashlib
    import json

    material = json.dumps(["flow", version, flow_input], sort_keys=True, default=repr)
    return hashlib.sha256(material.encode()).hexdigest()


class FlowCacheOperator(BaseOperator):
    """Looks the run's arguments up in the flow cache (the flow's ``cache_ttl``, spec 1.2).

    The task ``flow_cache``, before the first step. Windmill keys the cache by the flow's version
    and the run's arguments (``flow_cache_key``). On a hit it pushes the cached flow result and
    marks every step skipped, so the run ends at once with that result (``flow_result`` reports
    it); on a miss the steps run and ``flow_result`` stores a successful result for ``cache_ttl``
    seconds. ``openflow_outcome`` is ``cache_hit`` or ``cache_miss``.

    :param flow: The flow-level facts (``runtime.plan.FlowInfo``): its dag_id, which names the
        cache, and how to read the run's arguments.
    :param version: The flow's version (a hash of its definition), so an edited flow does not reuse
        the results of the old one.
    :param ttl: ``cache_ttl``: how long a result stays in the cache, in seconds.
    """

    # Nothing to render: the version and ttl come from the flow document when the DAG is built, and
    # the key is computed from the run's arguments at run time.
    template_fields: Sequence[str] = ()
    ui_color = "#e8e3f5"

    def __init__(self, *, flow: FlowInfo, version: str, ttl: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.flow = flow
        self.version = version
        self.ttl = ttl
        #: every task but ``flow_result``, filled in once the graph is complete
        self.step_task_ids: tuple[str, ...] = ()

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.airflow_context import run_flow_input
        from airflow_openflow.runtime.cache import cached_result

        ti = context["ti"]
        key = flow_cache_key(self.version, run_flow_input(context, self.flow))
        hit = cached_result(self.flow.dag_id, key)
        if hit is None:
            self.log.info("flow cache: no live entry for these arguments; the flow runs")
            ti.xcom_push(key=OUTCOME_KEY, value=CACHE_MISS)
            return None
        self.log.info("flow cache: hit (cache_ttl %g s); the steps do not run", self.ttl)
        ti.xcom_push(key=OUTCOME_KEY, value=CACHE_HIT)
        ti.xcom_push(key="return_value", value=hit[0])
        raise DownstreamTasksSkipped(tasks=list(self.step_task_ids))
