"""The Airflow side of the ``wmill`` SDK (``runtime/wmill_sdk.py``): a running task's XCom,
Variables, Connections and ids answer a step's ``wmill`` calls.

- Flow user state: an XCom of the writing task, key ``flow_user_state.<key>``, holding the value and
  when it was written. A read takes the latest write among the task itself and the tasks before it
  in the DAG (its upstream tasks, every map index). So the latest write in the run wins; a cleared
  task's writes vanish when it starts again (Airflow deletes a task's XComs then), and a write by a
  later step of an earlier try is never seen, as results are not.
- Trigger state (``get_state`` / ``set_state``): an Airflow Variable ``openflow_state__<path>`` (JSON)
  at Windmill's state path, so it persists across DAG runs.
- Variables and resources: Airflow Variables and Connections (runtime/connections.py path rule);
  ``set_resource`` writes a JSON Variable, because a worker cannot create Connections.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from airflow_openflow.runtime.connections import airflow_key, get_resource, get_variable, mask_secret
from airflow_openflow.runtime.plan import StepPlan
from airflow_openflow.spec.model import FlowModule

#: XCom key prefix of flow user state entries.
FLOW_USER_STATE_PREFIX = "flow_user_state."
#: Airflow Variable prefix of trigger-script state.
STATE_VARIABLE_PREFIX = "openflow_state__"
#: XCom key prefix (then the step id) of a step's workflow-as-code sub-tasks: name, status, start,
#: duration of each call.
SUB_TASKS_KEY = "openflow_sub_tasks"


class AirflowWmillBackend:
    def __init__(self, context: Mapping[str, Any], plan: StepPlan, module: FlowModule) -> None:
        self._context = context
        self._plan = plan
        self._module = module
        self._ti = context["ti"]

    @cached_property
    def workspace(self) -> str:
        from airflow.sdk import conf

        from airflow_openflow.provider import DEFAULT_WORKSPACE

        return str(conf.get("openflow", "workspace", fallback=DEFAULT_WORKSPACE) or DEFAULT_WORKSPACE)

    @property
    def root_job_id(self) -> str:
        return str(self._ti.run_id)

    @property
    def job_id(self) -> str:
        return str(
            getattr(self._ti, "id", "") or f"{self._ti.task_id}:{self._ti.map_index}:{self._ti.try_number}"
        )

    @property
    def flow_path(self) -> str:
        return self._plan.flow.path or self._plan.flow.dag_id

    @cached_property
    def trigger(self) -> str:
        run_type = getattr(self._context.get("dag_run"), "run_type", None)
        return "schedule" if getattr(run_type, "value", run_type) == "scheduled" else "user"

    @property
    def checkpoint_epoch(self) -> int:
        # Airflow sets max_tries = try_number + retries when a task is cleared, never on a retry.
        return int(self._ti.max_tries)

    @property
    def first_try(self) -> bool:
        # try_number keeps counting across clears: 1 only before any retry or clear.
        return int(self._ti.try_number) <= 1

    # -- flow user state --------------------------------------------------------------------------

    def set_flow_user_state(self, key: str, value: Any) -> None:
        entry = {"value": value, "written_at": time.time_ns(), "step": self._module.id}
        self._ti.xcom_push(key=FLOW_USER_STATE_PREFIX + key, value=entry)

    def get_flow_user_state(self, key: str) -> Any:
        entries = self._ti.xcom_pull(task_ids=self._visible_task_ids, key=FLOW_USER_STATE_PREFIX + key)
        latest = max(
            (e for e in entries or () if isinstance(e, Mapping) and "written_at" in e),
            key=lambda e: e["written_at"],
            default=None,
        )
        return latest["value"] if latest is not None else None

    @cached_property
    def _visible_task_ids(self) -> list[str]:
        task = self._context.get("task") or getattr(self._ti, "task", None)
        upstream = task.get_flat_relative_ids(upstream=True) if task is not None else set()
        return sorted({self._ti.task_id, *upstream})

    # -- trigger state ----------------------------------------------------------------------------

    def get_persistent_state(self, path: str) -> Any:
        from airflow.sdk import Variable

        return Variable.get(_state_variable(path), default=None, deserialize_json=True)

    def set_persistent_state(self, path: str, value: Any) -> None:
        from airflow.sdk import Variable

        Variable.set(
            _state_variable(path),
            value,
            description=f"airflow-openflow: the state of {path} (wmill.set_state)",
            serialize_json=True,
        )

    # -- variables and resources ------------------------------------------------------------------

    def get_variable(self, path: str) -> Any:
        return get_variable(path)

    def set_variable(self, path: str, value: str, *, is_secret: bool, description: str) -> None:
        from airflow.sdk import Variable

        if is_secret:
            mask_secret(value)
        Variable.set(airflow_key(path), value, description=description or f"Windmill variable {path}")

    def get_resource(self, path: str, *, none_if_undefined: bool) -> Any:
        from airflow_openflow.runtime.errors import StepError

        try:
            return get_resource(path)
        except StepError:
            if none_if_undefined:
                return None
            raise

    def set_resource(self, path: str, value: Any, *, resource_type: str) -> None:
        from airflow.sdk import Variable

        Variable.set(
            airflow_key(path),
            json.dumps(value),
            description=f"Windmill resource {path} ({resource_type}), written by wmill.set_resource",
        )
        mask_secret(value)  # values under sensitive keys are masked in this task's logs

    # -- approvals, sub-tasks ---------------------------------------------------------------------

    def resume_urls(self, approver: str | None) -> dict[str, str]:
        from airflow_openflow.runtime.wmill_session import WmillNotSupported

        if self._plan.approval_task_id is None or self._module.id != self._plan.step_id:
            raise WmillNotSupported(
                f"wmill.get_resume_urls(): step {self._module.id!r} has no suspend, so no approval "
                "follows it; resume links exist only in a step with suspend"
            )
        from airflow.sdk import conf

        from airflow_openflow.runtime.connections import resume_link_secret
        from airflow_openflow.runtime.resume_links import resume_urls

        suspend = self._module.suspend
        timeout = float(suspend.timeout or 1800) if suspend is not None else 1800.0
        return resume_urls(
            base_url=conf.get("api", "base_url", fallback="http://localhost:8080"),
            secret=resume_link_secret(),
            dag_id=self._ti.dag_id,
            run_id=self._ti.run_id,
            task_id=self._plan.approval_task_id,
            lifetime_s=timeout + 3600,  # the approval's timeout, plus an hour for the step itself
            approver=approver,
            map_index=self._ti.map_index,  # a loop iteration's approval is its own instance
        )

    def record_sub_tasks(self, records: list[dict[str, Any]]) -> None:
        self._ti.xcom_push(key=f"{SUB_TASKS_KEY}.{self._module.id}", value=records)


def _state_variable(path: str) -> str:
    return STATE_VARIABLE_PREFIX + airflow_key(path)
