"""The session behind the ``wmill`` module a python3 step imports (``runtime/wmill_sdk.py``).

While a step runs, ``wmill`` in ``sys.modules`` is ``runtime/wmill_sdk.py``, and each of its
functions asks the step's :class:`WmillSession` (held in a context variable, so steps of parallel
branches running in threads of one task each see their own). The session asks a
:class:`WmillBackend`, which the Airflow side provides (``runtime/airflow_wmill.py``): this module
imports no Airflow.

Workflows as code (``@task`` / ``@workflow``): each top-level call of a task function runs inline,
is logged with its name, start, end and result, and its result is checkpointed in the task's state
store under ``openflow_wac:<step>:<call index>`` (the state store is per task instance, so per map
index; steps nested in loops add their place). A retry of the same Airflow task instance replays
the calls that finished, in order, instead of running them again; a checkpoint is replayed only if
it was written in the same clear epoch (``max_tries`` of the task instance, which Airflow changes on
every clear), by the same script (a hash of its code) and for a call of the same name. Anything
else runs again, and a checkpoint of another script version is reported in the log.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_openflow.runtime.log_text import json_preview

log = logging.getLogger("airflow_openflow.wmill")

#: The names this module answers; any other public name is a stub that says it is not supported.
SUPPORTED = (
    "get_workspace",
    "get_root_job_id",
    "get_job_id",
    "get_variable",
    "set_variable",
    "get_resource",
    "set_resource",
    "get_state",
    "set_state",
    "get_state_path",
    "get_flow_user_state",
    "set_flow_user_state",
    "get_shared_state",
    "set_shared_state",
    "get_resume_urls",
    "task",
    "workflow",
)

_CHECKPOINT_PREFIX = "openflow_wac"


class WmillNotSupported(NotImplementedError):
    """A ``wmill`` function that has no meaning on Airflow (yet)."""


class WmillBackend(Protocol):
    """What the ``wmill`` functions need from the run a step belongs to."""

    @property
    def workspace(self) -> str: ...

    @property
    def root_job_id(self) -> str: ...

    @property
    def job_id(self) -> str: ...

    @property
    def flow_path(self) -> str: ...

    @property
    def trigger(self) -> str:
        """``user`` for runs started by hand or by the API, ``schedule`` for scheduled runs (the part
        of Windmill's state path that tells a manual run's state from a schedule's)."""

    def get_flow_user_state(self, key: str) -> Any: ...

    def set_flow_user_state(self, key: str, value: Any) -> None: ...

    def get_persistent_state(self, path: str) -> Any: ...

    def set_persistent_state(self, path: str, value: Any) -> None: ...

    def get_variable(self, path: str) -> Any: ...

    def set_variable(self, path: str, value: str, *, is_secret: bool, description: str) -> None: ...

    def get_resource(self, path: str, *, none_if_undefined: bool) -> Any: ...

    def set_resource(self, path: str, value: Any, *, resource_type: str) -> None: ...

    def resume_urls(self, approver: str | None) -> dict[str, str]: ...

    @property
    def checkpoint_epoch(self) -> int: ...

    @property
    def first_try(self) -> bool:
        """This is the first try of the task instance: no earlier try left checkpoints."""

    def record_sub_tasks(self, records: list[dict[str, Any]]) -> None: ...


class CheckpointStore(Protocol):
    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


@dataclass
class _Call:
    name: str
    index: int
    key: str
    started: float
    replayed: tuple[Any] | None = None


@dataclass
class WmillSession:
    """One step's run, as the ``wmill`` functions see it."""

    backend: WmillBackend | None
    step_id: str
    script: str
    store: CheckpointStore | None = None
    _calls: int = 0
    _depth: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    #: Windmill's contextual variables of the step (``WM_JOB_ID``...), for a child process it starts.
    environment: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @functools.cached_property
    def script_hash(self) -> str:
        return hashlib.sha256(self.script.encode()).hexdigest()[:16]

    def require_backend(self, name: str) -> WmillBackend:
        if self.backend is None:
            raise WmillNotSupported(
                f"wmill.{name}() needs the Airflow run this step belongs to; it is not available here"
            )
        return self.backend

    @property
    def state_path(self) -> str:
        """Windmill's state path of a flow step: ``<flow path>/<step id>_<trigger>`` (spec 7.2)."""
        backend = self.require_backend("get_state")
        return f"{backend.flow_path}/{self.step_id}_{backend.trigger}"

    # -- workflows as code ----------------------------------------------------------------------

    def run_task(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = self._begin(name)
        if call is None:
            return fn(*args, **kwargs)  # nested: part of the enclosing task's call and checkpoint
        if call.replayed is not None:
            return call.replayed[0]
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            self._failed(call)
            raise
        return self._succeeded(call, result)

    async def arun_task(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = self._begin(name)
        if call is None:
            return await fn(*args, **kwargs)
        if call.replayed is not None:
            return call.replayed[0]
        try:
            result = await fn(*args, **kwargs)
        except BaseException:
            self._failed(call)
            raise
        return self._succeeded(call, result)

    def _begin(self, name: str) -> _Call | None:
        """The call about to run: None when nested in another task's call (it runs inline), else its
        index and, when a valid checkpoint exists, the replayed result."""
        with self._lock:
            if self._depth > 0:
                return None
            index = self._calls
            self._calls += 1
        call = _Call(name, index, f"{_CHECKPOINT_PREFIX}:{self.step_id}:{index}", time.time())
        call.replayed = self._replay(call.key, name, index)
        if call.replayed is None:
            log.info("wmill.task %s (call %d of step %s): started", name, index, self.step_id)
            with self._lock:
                self._depth += 1
        return call

    def _failed(self, call: _Call) -> None:
        with self._lock:
            self._depth -= 1
        self._record(call.name, call.index, call.started, time.time(), status="failed")
        log.info("wmill.task %s (call %d): failed", call.name, call.index)

    def _succeeded(self, call: _Call, result: Any) -> Any:
        with self._lock:
            self._depth -= 1
        ended = time.time()
        result = _json_result(result, f"the result of wmill.task {call.name}")
        if self.store is not None and self.backend is not None:
            checkpoint = {
                "epoch": self.backend.checkpoint_epoch,
                "script": self.script_hash,
                "name": call.name,
                "result": result,
                "started_at": call.started,
                "ended_at": ended,
            }
            self.store.set(call.key, checkpoint)
            self.store.set(f"{_CHECKPOINT_PREFIX}:{self.step_id}", {"calls": call.index + 1})
        self._record(call.name, call.index, call.started, ended, status="success")
        log.info(
            "wmill.task %s (call %d): finished in %.3f s, result %s",
            call.name,
            call.index,
            ended - call.started,
            json_preview(result, limit=500),
        )
        return result

    def _replay(self, key: str, name: str, index: int) -> tuple[Any] | None:
        if self.store is None or self.backend is None:
            return None
        saved = self.store.get(key)
        if not isinstance(saved, Mapping):
            return None
        if saved.get("epoch") != self.backend.checkpoint_epoch:
            return None  # written before the task was cleared: a clear re-runs from scratch
        if saved.get("script") != self.script_hash or saved.get("name") != name:
            log.warning(
                "wmill.task %s (call %d of step %s): a checkpoint from an earlier try exists, but it was "
                "written by %s; it is NOT replayed and the call runs again",
                name,
                index,
                self.step_id,
                "another version of the script (its code changed)"
                if saved.get("script") != self.script_hash
                else f"a call of {saved.get('name')!r} (the order of calls changed)",
            )
            return None
        started, ended = float(saved.get("started_at", 0)), float(saved.get("ended_at", 0))
        log.info(
            "wmill.task %s (call %d): replayed from its checkpoint (finished in an earlier try), result %s",
            name,
            index,
            json_preview(saved.get("result"), limit=500),
        )
        self._record(name, index, started, ended, status="replayed")
        return (saved.get("result"),)

    def _record(self, name: str, index: int, started: float, ended: float, *, status: str) -> None:
        self.records.append(
            {
                "name": name,
                "call": index,
                "status": status,
                "started_at": _iso(started),
                "duration_ms": round((ended - started) * 1000),
            }
        )

    def finish(self, *, succeeded: bool, final: bool) -> None:
        """After the script: record the sub-tasks; drop the checkpoints unless a retry may use them
        (the step failed with attempts left, or the process is being killed)."""
        if self.records and self.backend is not None:
            self.backend.record_sub_tasks(self.records)
        if self.store is None or not (succeeded or final):
            return
        if self._calls == 0 and self.backend is not None and self.backend.first_try:
            return  # nothing checkpointed, now or before: no read of the store
        index_key = f"{_CHECKPOINT_PREFIX}:{self.step_id}"
        saved = self.store.get(index_key)
        count = max(self._calls, int(saved.get("calls", 0)) if isinstance(saved, Mapping) else 0)
        for index in range(count):
            self.store.delete(f"{index_key}:{index}")
        if saved is not None:
            self.store.delete(index_key)


_current: contextvars.ContextVar[WmillSession | None] = contextvars.ContextVar("openflow_wmill", default=None)
_active: list[WmillSession] = []  # for threads a script starts itself (they do not inherit the context)
_active_lock = threading.Lock()


def current_session(name: str) -> WmillSession:
    session = _current.get()
    if session is None:
        with _active_lock:
            if len(_active) == 1:
                return _active[0]
        raise WmillNotSupported(f"wmill.{name}() is only available while an OpenFlow step runs")
    return session


def activate(session: WmillSession) -> contextvars.Token[WmillSession | None]:
    """Make the ``wmill`` functions answer for ``session`` in this context (and in threads the
    script starts, while it is the only active session); undo with :func:`deactivate`."""
    token = _current.set(session)
    with _active_lock:
        _active.append(session)
    return token


def deactivate(session: WmillSession, token: contextvars.Token[WmillSession | None]) -> None:
    with _active_lock:
        _active.remove(session)
    _current.reset(token)


def as_task(fn: Callable[..., Any]) -> Callable[..., Any]:
    name = getattr(fn, "__name__", "task")

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            session = _current.get()
            if session is None:
                return await fn(*args, **kwargs)
            return await session.arun_task(name, fn, args, kwargs)

        return call_async

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        session = _current.get()
        if session is None:  # outside a step (a local test of the script): a plain call, as in Windmill
            return fn(*args, **kwargs)
        return session.run_task(name, fn, args, kwargs)

    return call


# -- helpers -----------------------------------------------------------------------------------


def json_value(value: Any, what: str) -> None:
    """Windmill sends these values as JSON: anything JSON cannot hold is refused, naming it."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{what}: the value ({type(value).__qualname__}) is not JSON-serializable ({exc}); store JSON "
            "data: dict, list, str, int, float, bool or None"
        ) from None


def _json_result(value: Any, what: str) -> Any:
    from airflow_openflow.runtime.errors import StepError
    from airflow_openflow.runtime.scripts.python import to_json_compatible

    try:
        return to_json_compatible(value)
    except StepError as exc:
        message = exc.error.get("error", {}).get("message", str(exc))
        raise TypeError(f"{what} cannot be checkpointed: {message}") from None


def _iso(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat()
