"""The rules of workflow-as-code checkpoints and of the ``wmill`` module, on a dictionary store
(the task state store's interface); the real store across a killed process is in
tests/integration/test_wmill.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from airflow_openflow.runtime.wmill_context import wmill_session
from airflow_openflow.runtime.wmill_session import WmillNotSupported, WmillSession


class DictStore:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


class Backend:
    """Only what the checkpoints read: the clear epoch; and where sub-tasks are recorded."""

    def __init__(self, epoch: int = 0) -> None:
        self.checkpoint_epoch = epoch
        self.first_try = False  # as on a retry: finish() looks for earlier checkpoints
        self.recorded: list[list[dict[str, Any]]] = []

    def record_sub_tasks(self, records: list[dict[str, Any]]) -> None:
        self.recorded.append(records)


SCRIPT = """\
from wmill import task

CALLS = []

@task
def double(x):
    CALLS.append(("double", x))
    return x * 2

@task(tag="io")
def fail_once(x):
    CALLS.append(("fail_once", x))
    if FAIL:
        raise RuntimeError("boom")
    return x + 1

def main():
    return fail_once(double(20))
"""


def run_script(
    store: DictStore, backend: Backend, *, script: str = SCRIPT, fail: bool
) -> tuple[Any, list[Any]]:
    """One try of a step: the script's module runs under a session; returns (result, calls)."""
    session = WmillSession(backend, "step", script, store=store)  # type: ignore[arg-type]
    namespace: dict[str, Any] = {"FAIL": fail}
    with wmill_session(session):
        exec(compile(script, "<step>", "exec"), namespace)
        try:
            result = namespace["main"]()
        except RuntimeError:
            session.finish(succeeded=False, final=False)
            return None, namespace["CALLS"]
        session.finish(succeeded=True, final=True)
    return result, namespace["CALLS"]


def test_a_retry_replays_finished_calls_and_success_drops_the_checkpoints() -> None:
    store, backend = DictStore(), Backend()
    assert run_script(store, backend, fail=True) == (None, [("double", 20), ("fail_once", 40)])
    assert store.data["openflow_wac:step:0"]["result"] == 40  # kept for the retry
    result, calls = run_script(store, backend, fail=False)
    assert (result, calls) == (41, [("fail_once", 40)])  # double was not run again
    assert store.data == {}
    assert [(r["name"], r["status"]) for r in backend.recorded[-1]] == [
        ("double", "replayed"),
        ("fail_once", "success"),
    ]


def test_a_cleared_task_runs_every_call_again() -> None:
    store = DictStore()
    run_script(store, Backend(epoch=0), fail=True)
    # Airflow raises max_tries on a clear: checkpoints of before the clear are not replayed.
    result, calls = run_script(store, Backend(epoch=3), fail=False)
    assert (result, calls) == (41, [("double", 20), ("fail_once", 40)])


def test_a_checkpoint_of_another_script_version_is_not_replayed_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, backend = DictStore(), Backend()
    run_script(store, backend, fail=True)
    changed = SCRIPT.replace("return x * 2", "return x * 3")
    with caplog.at_level(logging.WARNING, logger="airflow_openflow.wmill"):
        result, calls = run_script(store, backend, script=changed, fail=False)
    assert (result, calls) == (61, [("double", 20), ("fail_once", 60)])
    assert "another version of the script" in caplog.text and "NOT replayed" in caplog.text


def test_a_result_that_is_not_json_cannot_be_checkpointed() -> None:
    script = (
        "from wmill import task\n\n@task\ndef make():\n    return {1, 2}\n\ndef main():\n    return make()\n"
    )
    session = WmillSession(Backend(), "step", script, store=DictStore())  # type: ignore[arg-type]
    namespace: dict[str, Any] = {}
    with wmill_session(session), pytest.raises(TypeError, match=r"result of wmill\.task make cannot be"):
        exec(compile(script, "<step>", "exec"), namespace)
        namespace["main"]()


def test_nested_and_async_task_calls() -> None:
    script = (
        "from wmill import task\n\n"
        "@task\ndef inner(x):\n    return x + 1\n\n"
        "@task\ndef outer(x):\n    return inner(x) * 10\n\n"
        "@task\nasync def later(x):\n    return x - 1\n\n"
        "async def main():\n    return await later(outer(1))\n"
    )
    store = DictStore()
    session = WmillSession(Backend(), "step", script, store=store)  # type: ignore[arg-type]
    namespace: dict[str, Any] = {}
    with wmill_session(session):
        exec(compile(script, "<step>", "exec"), namespace)
        assert asyncio.run(namespace["main"]()) == 19
    # inner ran inside outer: one checkpoint for outer, one for later.
    checkpoints = sorted(k for k in store.data if k.count(":") == 2)
    assert checkpoints == ["openflow_wac:step:0", "openflow_wac:step:1"]


def test_outside_a_step_tasks_are_plain_calls_and_other_functions_say_where_they_work() -> None:
    import airflow_openflow.runtime.wmill_sdk as wmill

    assert wmill.task(lambda x: x * 2)(4) == 8
    with pytest.raises(WmillNotSupported, match=r"only available while an OpenFlow step runs"):
        wmill.get_flow_user_state("k")
    with pytest.raises(WmillNotSupported, match=r"not supported on Airflow: wmill\.run_flow_async"):
        wmill.run_flow_async("f/x")


def test_the_module_scripts_import_as_wmill_shows_only_windmill_names() -> None:
    import airflow_openflow.runtime.wmill_sdk as wmill
    from airflow_openflow.runtime.wmill_session import SUPPORTED

    public = {name for name in dir(wmill) if not name.startswith("_")}
    assert public == set(SUPPORTED)
    for internal in ("install", "WmillSession", "wmill_session", "WmillNotSupported", "json", "Path"):
        assert internal not in public
