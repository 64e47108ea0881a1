"""Step result cache (``cache_ttl``), kept in Airflow Variables so it outlives the run.

One Variable per (flow, step, script, arguments): ``openflow_cache__<dag_id>__<sha256[:32]>``
holding ``{"expires_at": <epoch s>, "result": ...}``. A hit within the TTL returns the stored
result without running the script (Windmill's step cache, spec 2). An expired entry is replaced on
the next run of the step.
"""

from __future__ import annotations

import time
from typing import Any


def cache_variable_key(dag_id: str, key: str) -> str:
    return f"openflow_cache__{dag_id}__{key[:32]}"


def cached_result(dag_id: str, key: str) -> tuple[Any] | None:
    """``(result,)`` when a live entry exists, else None (a 1-tuple: a cached result may be null)."""
    from airflow.sdk import Variable

    entry = Variable.get(cache_variable_key(dag_id, key), default=None, deserialize_json=True)
    if not isinstance(entry, dict) or float(entry.get("expires_at", 0)) <= time.time():
        return None
    return (entry.get("result"),)


def store_result(dag_id: str, key: str, result: Any, ttl: float) -> None:
    from airflow.sdk import Variable

    entry = {"expires_at": time.time() + float(ttl), "result": result}
    Variable.set(
        cache_variable_key(dag_id, key),
        entry,
        serialize_json=True,
        description="airflow-openflow step cache (cache_ttl); safe to delete",
    )
