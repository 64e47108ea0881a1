"""One builder per OpenFlow module kind: each turns a step into the Airflow task(s) that run it.

A builder returns the task whose completion means "this step is done" (its result is that task's
``return_value``). Kinds a release cannot run yet are rejected earlier, by ``spec.check_supported``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.sdk import BaseOperator

from airflow_openflow.compile import container, identity, rawscript
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import FlowModule

Builder = Callable[..., BaseOperator]

BUILDERS: dict[str, Builder] = {
    "rawscript": rawscript.build,
    "script": rawscript.build,  # a hub script fetched when it runs (only those are left by the loader)
    "identity": identity.build,
    "forloopflow": container.build,
    "whileloopflow": container.build,
    "branchone": container.build,
    "branchall": container.build,
    "flow": container.build,
}


def build_step(module: FlowModule, plan: StepPlan, **task_kwargs: Any) -> BaseOperator:
    builder = BUILDERS.get(module.value.type)
    if builder is None:  # check_supported rejects these at load time; this guards the invariant
        raise ValueError(f"step {module.id!r}: no builder for module type {module.value.type!r}")
    return builder(module, plan, **task_kwargs)
