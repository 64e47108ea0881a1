"""``run_flow``: run one OpenFlow document as a real Airflow DAG run and return its outcome.

The run goes through Airflow itself: the flow is compiled to a DAG, written as a DAG file into a
dags folder of the runner's own, and executed with ``DAG.test``, in one of two modes (see
``run_flow``'s ``mode``):

- ``executor``: ``DAG.test(use_executor=True)``: Airflow's scheduling loop, a LocalExecutor (several
  task instances at once, within the scheduler's limits such as ``max_active_tis_per_dagrun``), task
  processes that talk to an Execution API server. That API server and a triggerer (for deferred
  tasks) start with the first run in this mode, the server on a free loopback port, and are stopped
  by their pids when the process exits.
- ``in_process``: ``DAG.test()``: the same scheduling loop runs each task in the calling process
  (one at a time, through Airflow's in-process Execution API), as Airflow's own ``dag.test()`` does;
  several times faster per task. Only for flows whose tasks never wait for another task instance,
  DAG run or a human (see ``executor_reason``), and only on the main thread (step timeouts use a
  signal timer).

``auto`` (the default, or ``OPENFLOW_RUN_MODE``) picks ``in_process`` when the flow allows it.

Configuration: the metadata database is the one of ``AIRFLOW_HOME`` (a temporary home is created
when ``AIRFLOW_HOME`` is not set); the dags folder, the executor and the Execution API address are
the runner's own, set before Airflow is imported. Run it in a process of its own, not inside a
scheduler or a task.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_openflow.compat.metadata import (
    apply_live_config,
    create_metadata_db,
    run_outcome_rows,
)
from airflow_openflow.process_trees import stop_processes
from airflow_openflow.run_contexts import approval_timeouts, executor_mode, quiet
from airflow_openflow.run_modes import (
    choose_mode,
    requested_mode,
)

_lock = threading.Lock()
_runner: _Runner | None = None
_SERVER_STOP_SECONDS = 5.0  # then SIGKILL to the server's process group
#: ``run_flow(observer=...)``: given the DAG, a context manager entered while the run runs.
RunObserver = Callable[[Any], contextlib.AbstractContextManager[Any]]


@dataclass(frozen=True, slots=True)
class FlowOutcome:
    """How a flow run ended: ``status`` is ``"success"`` or ``"failure"``; ``result`` is the flow
    result as Windmill defines it (the final task's ``return_value``)."""

    status: str
    result: Any
    dag_id: str
    run_id: str
    task_states: dict[str, str] = field(default_factory=dict)
    skipped: bool = False  # the flow stopped early with skip_if_stopped
    mode: str = "executor"  # how the run's tasks ran: "executor" or "in_process"


def run_flow(
    flow: Mapping[str, Any] | str | os.PathLike[str],
    inputs: Mapping[str, Any] | None = None,
    *,
    observer: RunObserver | None = None,
    mode: str | None = None,
) -> FlowOutcome:
    """Run ``flow`` (a parsed document, or the path of a flow file or git-sync flow folder) once
    with ``inputs`` as its arguments, and wait for the DAG run to finish.

    ``mode`` (default: ``OPENFLOW_RUN_MODE``, else ``"auto"``): ``"executor"`` runs every task in a
    task process of its own through a LocalExecutor, an Execution API server and a triggerer, as a
    deployment does; ``"in_process"`` runs the tasks one at a time in this process (Airflow's
    ``dag.test()``), several times faster; ``"auto"`` takes ``in_process`` unless the flow needs
    the executor (approvals, sub-flow runs, loop iterations or branches that wait for each other;
    see ``executor_reason``). ``in_process`` for such a flow raises ``ValueError``. The result and
    the task states are the same in both modes; in ``in_process`` a script that kills its own
    process (or crashes the interpreter) ends the caller too.

    Raises ``FlowDocumentError`` when the document is invalid or uses what this release cannot
    run, ``FlowInputError`` when the inputs do not match the flow's schema (a required input
    without default is missing, a value has the wrong type), and ``RuntimeError`` when Airflow
    cannot run it at all. A flow that fails returns an outcome with ``status == "failure"``.

    ``observer``: called with the DAG before the run starts; the context manager it returns is
    entered for the length of the run (``run_view.StepView`` shows the steps as they finish).
    """
    from airflow_openflow.spec import FlowDocumentError, check_supported, load_flow

    loaded = load_flow(dict(flow) if isinstance(flow, Mapping) else Path(flow))
    errors = [p for p in check_supported(loaded.flow) if p.severity == "error"]
    if errors:
        raise FlowDocumentError(errors)
    requested = requested_mode(mode)
    with _lock:
        runner = _get_runner()
        return runner.run(flow, loaded.flow, dict(inputs or {}), observer, requested)


def _get_runner() -> _Runner:
    global _runner
    if _runner is None:
        _runner = _Runner()
    return _runner


def close_runner() -> None:
    """Stop what ``run_flow`` started in this process (API server, triggerer, executor workers and
    everything they run), now rather than at exit. ``run_flow`` starts them again if called later."""
    global _runner
    runner, _runner = _runner, None
    if runner is not None:
        runner.close()
    else:
        _abort_executors()


def _abort_executors() -> None:
    if "airflow_openflow.compat.local_executor" in sys.modules:  # never import Airflow just to stop nothing
        from airflow_openflow.compat.local_executor import abort_all

        abort_all()


class _Runner:
    def __init__(self) -> None:
        home = os.environ.get("AIRFLOW_HOME")
        self._own_home = not home
        if not home:
            home = tempfile.mkdtemp(prefix="airflow-openflow-home-")
        self.home = Path(home)
        self.dags = self.home / "openflow_run" / "dags"
        self.documents = self.home / "openflow_run" / "documents"
        self.dags.mkdir(parents=True, exist_ok=True)
        self.documents.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        # One DAG file per process: two processes sharing an AIRFLOW_HOME do not overwrite each other.
        self.dag_file = self.dags / f"openflow_run_{os.getpid()}.py"
        self._configure()
        self._processes: list[subprocess.Popen[bytes]] = []
        # atexit runs handlers last-registered first: multiprocessing registers one that joins the
        # executor's workers (forever, for idle workers of an abandoned run); ours must run before.
        import multiprocessing.util  # noqa: F401

        atexit.register(self.close)
        self._stop_servers_on_sigterm()
        try:
            self._init_db()
        except BaseException:
            self.close()
            raise

    def _ensure_servers(self) -> None:
        """The API server and triggerer the executor mode needs, started once (on first use)."""
        if self._processes:
            return
        try:
            self._start_api_server()
            self._start_triggerer()
        except BaseException:  # e.g. KeyboardInterrupt while the API server starts
            self.close()
            raise

    # -- setup ------------------------------------------------------------------------------------

    def _configure(self) -> None:
        settings = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "airflow_openflow.compat.local_executor.RunnerLocalExecutor",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
        }
        defaults = {
            "AIRFLOW__CORE__PARALLELISM": "4",  # >= 2: branches and parallel loops overlap
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            # A task's supervisor notices its task process has exited only when it next looks, every
            # min_heartbeat_interval (5 s by default), and holds its executor worker until then.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        }
        os.environ.update(settings)
        for key, value in defaults.items():
            os.environ.setdefault(key, value)
        # Airflow was imported before us: apply the same settings to its live configuration.
        live = {key: os.environ[key] for key in (*settings, *defaults)}
        apply_live_config(live, dags_folder=str(self.dags))

    def _init_db(self) -> None:
        with quiet():
            create_metadata_db()

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log_file = open(self.home / "openflow_run" / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=os.environ.copy(),
        )
        self._processes.append(process)
        return process

    def _start_api_server(self) -> None:
        log_path = self.home / "openflow_run" / "api-server.log"
        # Only the Execution API, which task processes talk to: the REST API and the UI would
        # take a third longer to start and serve nobody here (the port is not published).
        api = self._spawn(
            "api-server",
            "api-server",
            "--apps",
            "execution",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        )
        url = f"http://127.0.0.1:{self.port}/execution/health"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if api.poll() is not None:
                raise RuntimeError(f"the Airflow API server exited early; see {log_path}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"the Airflow API server did not become healthy in 120 s; see {log_path}")

    def _start_triggerer(self) -> None:
        # Deferred tasks (a step's sleep) resume through the triggerer; DAG.test does not run
        # triggers itself when it uses an executor.
        self._spawn("triggerer", "triggerer")

    def _stop_servers_on_sigterm(self) -> None:
        """atexit does not run when the process is terminated by a signal; without this, the API
        server and triggerer would outlive a ``kill``-ed caller. Only when nobody else handles
        SIGTERM, and only in this process (forked executor workers inherit the handler)."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        owner = os.getpid()

        def on_sigterm(signum: int, frame: Any) -> None:
            if os.getpid() == owner:
                self.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)

    def close(self) -> None:
        """Stop everything this runner started, by pid: executor workers of a run that did not end
        (and what they run), then the API server and triggerer with their process groups and any
        descendant that left them. Idempotent; also the atexit and SIGTERM handler."""
        import psutil

        _abort_executors()
        processes, self._processes = self._processes, []
        descendants: list[psutil.Process] = []  # Process objects: a pid reused meanwhile is never hit
        for process in processes:
            with contextlib.suppress(psutil.Error):
                descendants += psutil.Process(process.pid).children(recursive=True)
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        # Both shut down at once; a graceful stop takes them ~10 s (the triggerer's supervisor waits
        # that long for its runner) and serves nothing once our runs are over or abandoned.
        deadline = time.monotonic() + _SERVER_STOP_SECONDS
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
        stop_processes(descendants, grace_s=5.0)  # only what survived its group's signal
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)
        else:
            self.dag_file.unlink(missing_ok=True)

    # -- one run ----------------------------------------------------------------------------------

    def run(
        self,
        source: Any,
        flow: Any,
        inputs: dict[str, Any],
        observer: RunObserver | None = None,
        requested: str = "auto",
    ) -> FlowOutcome:
        from airflow_openflow.compile import dag_id_for_document
        from airflow_openflow.dag_factory import load_openflow_dags

        if isinstance(source, Mapping):
            # A document without a file: stored as JSON, named after its content.
            dag_id = dag_id_for_document(flow.summary, flow.content_hash)
            target = self.documents / f"{dag_id}.json"
            target.write_text(json.dumps(source, ensure_ascii=False), encoding="utf-8")
        else:
            target = Path(source).resolve()
        dag_file = self.dag_file
        dag_file.write_text(
            "# Written by airflow_openflow.run_flow: the flow being run, as an Airflow DAG.\n"
            "from airflow_openflow import load_openflow_dags\n\n"
            f"load_openflow_dags({str(target)!r}, namespace=globals(), strict=True)\n",
            encoding="utf-8",
        )
        (dag,) = load_openflow_dags(target, {"__file__": str(dag_file)}, strict=True).values()
        _check_inputs(dag, inputs)
        mode = choose_mode(dag, requested)
        executor_only: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if mode == "executor":
            self._ensure_servers()
            executor_only = executor_mode(dag)
        watching = observer(dag) if observer is not None else contextlib.nullcontext()
        with quiet(), approval_timeouts(dag), executor_only, watching:
            try:
                dag_run = dag.test(run_conf=inputs, use_executor=mode == "executor")
            except BaseException:
                # DAG.test ends its executor only when the run finishes: stop the workers (and the
                # tasks they run) of a run that is abandoned, or they wait for work forever.
                _abort_executors()
                raise
        return self._outcome(dag, dag_run, mode)

    def _outcome(self, dag: Any, dag_run: Any, mode: str = "executor") -> FlowOutcome:
        from airflow_openflow.runtime.plan import STATUS_KEY

        final_id = dag.leaves[0].task_id if len(dag.leaves) == 1 else "flow_result"
        values, states = run_outcome_rows(
            dag_id=dag.dag_id, run_id=dag_run.run_id, task_id=final_id, keys=["return_value", STATUS_KEY]
        )
        run_state = str(dag_run.state)
        if STATUS_KEY not in values:
            where = (
                f"the task logs under {self.home / 'logs'}"
                if mode == "executor"
                else "the errors logged above (tasks ran in process), or run it with mode='executor'"
            )
            raise RuntimeError(
                f"DAG run {dag_run.run_id} of {dag.dag_id} ended {run_state} without a flow result "
                f"(task states: {states}); see {where}"
            )
        status = "success" if run_state == "success" and values[STATUS_KEY] == "success" else "failure"
        return FlowOutcome(
            status=status,
            result=values.get("return_value"),
            dag_id=dag.dag_id,
            run_id=dag_run.run_id,
            task_states=states,
            skipped=states.get(final_id) == "skipped",
            mode=mode,
        )


class FlowInputError(ValueError):
    """The inputs do not match the flow's schema (as Airflow checks a run's conf against the DAG's
    params when the run is created)."""


def _check_inputs(dag: Any, inputs: dict[str, Any]) -> None:
    import copy

    params = copy.deepcopy(dag.params)
    try:
        params.update(inputs)
        params.validate()
    except (ValueError, TypeError) as exc:  # Airflow's ParamValidationError is a ValueError
        raise FlowInputError(f"inputs do not match the schema of flow {dag.dag_id!r}: {exc}") from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
