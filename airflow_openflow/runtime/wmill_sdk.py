"""The ``wmill`` module a python3 step imports: Windmill's Python SDK, answered by Airflow.

A Windmill script that does ``import wmill`` runs unchanged: while a step runs, ``wmill`` in
``sys.modules`` is this module. It holds Windmill's names only; each function asks the step's
session (``runtime/wmill_session.py``), and any other public name is a stand-in that fails with
``not supported on Airflow: wmill.<name>`` when called. Its own imports are private names, so
``dir(wmill)`` shows what Windmill's SDK shows.
"""

# No `from __future__ import annotations`: it would show as `wmill.annotations`.
import json as _json
from collections.abc import Callable as _Callable
from pathlib import Path as _Path
from typing import Any as _Any

from airflow_openflow.runtime.wmill_session import SUPPORTED as _SUPPORTED
from airflow_openflow.runtime.wmill_session import WmillNotSupported as _WmillNotSupported
from airflow_openflow.runtime.wmill_session import as_task as _as_task
from airflow_openflow.runtime.wmill_session import current_session as _session
from airflow_openflow.runtime.wmill_session import json_value as _json_value


def get_workspace() -> str:
    return _session("get_workspace").require_backend("get_workspace").workspace


def get_root_job_id(job_id: str | None = None) -> str:
    """The root flow's job: the DAG run id."""
    return _session("get_root_job_id").require_backend("get_root_job_id").root_job_id


def get_job_id() -> str:
    """This step's job: the task instance's id (one per try)."""
    return _session("get_job_id").require_backend("get_job_id").job_id


def get_variable(path: str) -> _Any:
    return _session("get_variable").require_backend("get_variable").get_variable(path)


def set_variable(path: str, value: str, is_secret: bool = False, description: str = "") -> None:
    backend = _session("set_variable").require_backend("set_variable")
    backend.set_variable(path, value, is_secret=is_secret, description=description)


def get_resource(path: str, none_if_undefined: bool = False) -> _Any:
    backend = _session("get_resource").require_backend("get_resource")
    return backend.get_resource(path, none_if_undefined=none_if_undefined)


def set_resource(path: str, value: _Any, resource_type: str = "any") -> None:
    _json_value(value, f"resource {path!r}")
    backend = _session("set_resource").require_backend("set_resource")
    backend.set_resource(path, value, resource_type=resource_type)


def get_state_path() -> str:
    return _session("get_state_path").state_path


def get_state(path: str | None = None) -> _Any:
    """The value a trigger script stored with ``set_state`` in an earlier run of this flow (or
    None): it persists across DAG runs."""
    session = _session("get_state")
    return session.require_backend("get_state").get_persistent_state(path or session.state_path)


def set_state(value: _Any, path: str | None = None) -> None:
    session = _session("set_state")
    target = path or session.state_path
    _json_value(value, f"state {target!r}")
    session.require_backend("set_state").set_persistent_state(target, value)


def get_flow_user_state(key: str) -> _Any:
    """The value last stored under ``key`` in this DAG run by this step or a step before it, or None."""
    return _session("get_flow_user_state").require_backend("get_flow_user_state").get_flow_user_state(key)


def set_flow_user_state(key: str, value: _Any) -> None:
    _json_value(value, f"flow user state {key!r}")
    _session("set_flow_user_state").require_backend("set_flow_user_state").set_flow_user_state(key, value)


def get_shared_state(path: str = "state.json") -> _Any:
    """A JSON file of the ``./shared`` directory (flows with ``same_worker``)."""
    with open(_Path("shared") / path, encoding="utf-8") as file:
        return _json.load(file)


def set_shared_state(state: _Any, path: str = "state.json") -> None:
    _json_value(state, f"shared state {path!r}")
    target = _Path("shared") / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_json.dumps(state), encoding="utf-8")


def get_resume_urls(approver: str | None = None) -> dict[str, str]:
    return _session("get_resume_urls").require_backend("get_resume_urls").resume_urls(approver)


def task(*args: _Any, **options: _Any) -> _Any:
    """``@task``, ``@task()`` or ``@task(tag=...)``: each call is a checkpointed sub-task of the step.
    Options such as ``tag`` or ``timeout`` choose Windmill workers; here the call runs in the task."""
    if len(args) == 1 and callable(args[0]) and not options:
        return _as_task(args[0])
    if args:
        raise TypeError("wmill.task takes the function, or keyword options only: @task or @task(tag=...)")
    return _as_task


def workflow(fn: _Callable[..., _Any]) -> _Callable[..., _Any]:
    """``@workflow`` marks the function that orchestrates tasks; it runs as it is, in the step."""
    return fn


def __getattr__(name: str) -> _Any:
    """Any other public name: a stand-in that says clearly what is missing when it is used, so a
    script importing more of the SDK than it calls still runs."""
    if name.startswith("_"):
        raise AttributeError(name)

    def not_supported(*args: _Any, **kwargs: _Any) -> _Any:
        raise _WmillNotSupported(
            f"not supported on Airflow: wmill.{name} (airflow-openflow supports: {', '.join(_SUPPORTED)})"
        )

    not_supported.__name__ = name
    return not_supported


__all__ = list(_SUPPORTED)
