"""A real, production-shaped Airflow deployment for tests: a PostgreSQL metadata database of its own
(created and dropped), CeleryExecutor with a Redis database number of its own as the broker, and API
server, scheduler, DAG processor, triggerer and one Celery worker as processes of their own, on
loopback, in a temporary AIRFLOW_HOME, driven over the REST API as the UI drives it.

PostgreSQL (127.0.0.1:5432, trust) and Redis (127.0.0.1:6379) are this machine's services; the
fixture only creates what it needs in them. Every process is started in a session of its own and
stopped by its pid (process group), also when a test fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ADMIN = "admin"
ADMIN_PASSWORD = "admin-test-password"

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: Celery worker slots: as many task processes at once as a small production worker.
WORKER_CONCURRENCY = 4


# Tasks that defer from a worker on a trigger that fires at once and resume in a worker, whose
# deferring workload ends late: a process started by the task holds the task's output pipes, so the
# supervisor (the workload) ends only when it exits, as a workload can under load. The shape of
# apache/airflow#72716.
RESUME_RACE_DAG = """\
import datetime
import subprocess
import time

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import DAG, BaseOperator


class DeferThenResume(BaseOperator):
    def execute(self, context):
        subprocess.Popen(["sleep", "8"])  # outlives the task process, holding its stdout/stderr
        now = datetime.datetime.now(tz=datetime.timezone.utc)
        self.defer(trigger=DateTimeTrigger(moment=now), method_name="resumed")

    def resumed(self, context, event=None):
        time.sleep(15)  # still running when the scheduler hears that the first workload ended
        return "resumed"


with DAG(dag_id="resume_race_control", schedule=None):
    for i in range(3):
        DeferThenResume(task_id=f"defer_{i}")
"""


class PostgresDatabase:
    """A metadata database of the deployment's own on the machine's PostgreSQL, dropped at the end:
    a copy of a migrated template (``_migrated_template``), made in a fraction of a second where
    ``airflow db migrate`` takes 5-10 s per deployment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.name = f"openflow_test_{os.getpid()}_{os.urandom(4).hex()}"
        with _template_lock():  # a template being copied must have no other user
            template = _migrated_template(env)
            self._admin(f'CREATE DATABASE "{self.name}" TEMPLATE "{template}"')

    @property
    def sqlalchemy_url(self) -> str:
        return f"{POSTGRES.replace('postgresql://', 'postgresql+psycopg2://')}/{self.name}"

    @property
    def celery_result_backend(self) -> str:
        return f"db+{POSTGRES}/{self.name}"

    def drop(self) -> None:
        # WITH (FORCE): a process killed mid-test may leave a connection behind.
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    @staticmethod
    def _admin(statement: str) -> None:
        import psycopg

        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # names made above, not user input


def _template_name() -> str:
    """The template's name: Airflow's version and its migrations, so another Airflow never gets a
    template migrated by this one (the machine's PostgreSQL outlives the test run)."""
    import hashlib

    import airflow

    migrations = Path(airflow.__file__).parent / "migrations" / "versions"
    names = sorted(path.name for path in migrations.glob("*.py"))
    digest = hashlib.sha256("\n".join([airflow.__version__, *names]).encode()).hexdigest()[:12]
    return f"openflow_test_template_{digest}"


@contextlib.contextmanager
def _template_lock() -> Iterator[None]:
    """One test process at a time makes or copies the template (xdist workers, parallel runs)."""
    with open("/tmp/airflow-openflow-test-pg-template.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _migrated_template(env: dict[str, str]) -> str:
    """The name of a database migrated by this Airflow (``airflow db migrate``), made on first use:
    migrated under another name, then renamed, so a migration that failed half-way is never used."""
    import psycopg

    name = _template_name()
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return name
    building = f"{name}_building"
    PostgresDatabase._admin(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
    PostgresDatabase._admin(f'CREATE DATABASE "{building}"')
    url = f"{POSTGRES.replace('postgresql://', 'postgresql+psycopg2://')}/{building}"
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env={**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url},
        check=True,
        capture_output=True,
        timeout=300,
    )
    PostgresDatabase._admin(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    return name


class RedisDatabase:
    """A Redis database number (1-15) held by this deployment alone: a lock file per number, so
    parallel test workers never share a broker queue; emptied when taken and when released."""

    def __init__(self) -> None:
        for number in range(1, 16):
            handle = open(f"/tmp/airflow-openflow-test-redis-{number}.lock", "w")  # noqa: SIM115
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.number, self._lock = number, handle
            self._flush()
            return
        raise RuntimeError("all Redis databases 1-15 are held by other test deployments")

    @property
    def url(self) -> str:
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.number}"

    def release(self) -> None:
        self._flush()
        self._lock.close()

    def _flush(self) -> None:
        import redis

        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.number, socket_timeout=10).flushdb()


class AirflowDeployment:
    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        *,
        extra_env: dict[str, str] | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        """``users``: more SimpleAuthManager users, name -> role (viewer, user, op, admin)."""
        self.home = home
        self.roles = {ADMIN: "admin", **(users or {})}
        self.dags_folder = dags_folder
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.database: PostgresDatabase | None = None
        self.broker: RedisDatabase | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(WORKER_CONCURRENCY),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
                # Small pools: several deployments share the machine's PostgreSQL (100 connections).
                "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "4",
                # The worker's and the triggerer's log servers, on ports of their own.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                    f"{name}:{role}" for name, role in self.roles.items()
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
                "AIRFLOW__API_AUTH__JWT_SECRET": "openflow-test-secret-" + os.urandom(8).hex(),
                "AIRFLOW__API__BASE_URL": self.base,
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                # A DAG file is parsed as soon as it is seen; re-parsing it every few seconds costs
                # CPU the tasks need, and no test changes the DAG files of a running deployment.
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                # A Celery slot is freed when the task's supervisor notices its process ended, at
                # its next look: every 5 s by default, 1 s here (docs/performance.md: a setting
                # deployments use too); the tests wait that much less for every task.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                # The parse cache of this deployment's flows goes with its home, not the user's.
                "AIRFLOW__OPENFLOW__PARSE_CACHE_DIR": str(home / "parse-cache"),
            }
        )
        self.env.update(extra_env or {})
        self._tokens: dict[str, str] = {}

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> AirflowDeployment:
        """Creates the database and broker, starts every component; stops what it started when a
        step fails."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> AirflowDeployment:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({name: password(name) for name in self.roles}))
        self.database = PostgresDatabase(self.env)  # already migrated
        self.broker = RedisDatabase()
        self.env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database.sqlalchemy_url,
                "AIRFLOW__CELERY__BROKER_URL": self.broker.url,
                "AIRFLOW__CELERY__RESULT_BACKEND": self.database.celery_result_backend,
            }
        )
        self._spawn(
            "api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"
        )
        self._wait_healthy()
        self._spawn("scheduler", "scheduler")
        self._spawn("dag-processor", "dag-processor")
        self._spawn("triggerer", "triggerer")  # deferred tasks: sleeps, sequential loop iterations
        if self.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor":  # a LocalExecutor's are the scheduler's
            self.start_worker()
        return self

    def start_worker(self) -> None:
        """The Celery worker (again, after a test stopped or killed it)."""
        self._spawn(
            "celery-worker",
            "celery",
            "worker",
            "--concurrency",
            str(WORKER_CONCURRENCY),
            "--without-mingle",
            "--without-gossip",
        )

    def stop_component(self, name: str, timeout: float = 30) -> int:
        """Stops one component as ``stop`` does (SIGTERM to its process group, SIGKILL after
        ``timeout`` s) and forgets it; returns its exit code. The rest keeps running."""
        proc = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(timeout=5)

    def kill_component(self, name: str) -> int:
        """SIGKILL to one component's process group (a crash: nothing runs its shutdown), and forgets
        it; returns its exit code. Processes that left the group (task processes) are not hit."""
        proc = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=30)

    def start_component(self, name: str) -> None:
        """Starts a component again after ``stop_component`` (its log file is appended to)."""
        if name == "celery-worker":
            self.start_worker()
        elif name in ("scheduler", "dag-processor", "triggerer"):
            self._spawn(name, name)
        else:
            raise ValueError(f"no component {name!r} to start (the API server is started by start())")

    def stop(self) -> None:
        for proc in self.processes.values():
            # Also when the leader has exited: its children (task processes) may still run.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.processes.clear()
        if self.database is not None:
            self.database.drop()
            self.database = None
        if self.broker is not None:
            self.broker.release()
            self.broker = None

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.base}/api/v2/monitor/health", timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"API server not healthy after {timeout} s; see {self.home / 'api-server.log'}")

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self.home / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # -- REST -------------------------------------------------------------------------------------

    def token(self, user: str = ADMIN) -> str:
        if user not in self._tokens:
            credentials = {"username": user, "password": password(user)}
            status, body = self._request("POST", "/auth/token", credentials, user=None)
            assert status in (200, 201), f"no token for {user}: {status} {body}"
            self._tokens[user] = body["access_token"]
        return self._tokens[user]

    def api(self, method: str, path: str, body: Any = None, *, user: str = ADMIN) -> Any:
        status, answer = self._request(method, f"/api/v2{path}", body, user=user)
        if status >= 400:
            raise AssertionError(f"{method} {path} -> {status}: {str(answer)[:2000]}")
        return answer

    def api_status(self, method: str, path: str, body: Any = None, *, user: str = ADMIN) -> tuple[int, Any]:
        """The status code and body, whatever the status (for requests that must be refused)."""
        return self._request(method, f"/api/v2{path}", body, user=user)

    def plugin_status(
        self, method: str, path: str, body: Any = None, *, user: str | None = ADMIN
    ) -> tuple[int, Any]:
        """A call to a plugin's endpoint (``path`` from the server root), whatever the status;
        ``user=None``: without a token."""
        return self._request(method, path, body, user=user)

    def _request(self, method: str, path: str, body: Any, *, user: str | None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if user is not None:
            request.add_header("Authorization", f"Bearer {self.token(user)}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode()
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(AssertionError):
                return dict(self.api("GET", f"/dags/{dag_id}"))
            time.sleep(1)
        errors = self.api("GET", "/importErrors")
        raise AssertionError(
            f"DAG {dag_id} not parsed in {timeout} s; import errors: {errors}\n"
            f"{self.log_tail('dag-processor')}"
        )

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, *, user: str = ADMIN) -> str:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        body = {"logical_date": None, "conf": conf or {}}
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", body, user=user)
        return str(run["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return str(state)
            time.sleep(1)
        raise AssertionError(f"run {run_id} still {state} after {timeout} s\n{self.log_tail('scheduler')}")

    def clear_with_downstream(self, dag_id: str, run_id: str, task_ids: list[Any]) -> list[tuple[str, int]]:
        """What the UI's Clear dialog does for these task instances with "Downstream" on; returns the
        cleared (task_id, map_index) pairs, sorted."""
        body = {
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "include_downstream": True,
            "only_failed": False,
            "dry_run": False,
        }
        cleared = self.api("POST", f"/dags/{dag_id}/clearTaskInstances", body)
        return sorted((ti["task_id"], ti["map_index"]) for ti in cleared["task_instances"])

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in body["task_instances"]}

    def state_mismatches(self, dag_id: str) -> list[str]:
        """The scheduler's "state mismatch" audit entries of a DAG: what apache/airflow#72716 leaves
        behind when it fails a resumed task instance."""
        body = self.api("GET", f"/eventLogs?dag_id={dag_id}&event=state%20mismatch&limit=100")
        return [str(entry.get("extra")) for entry in body["event_logs"]]

    def describe_task(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> str:
        """A task instance's state and the events of its latest try's log, plus the triggerer's log
        tail: what an assertion about that task shows when it fails (CI keeps no files).
        ``map_index``: that task instance of a mapped task."""
        mapped = "" if map_index is None else f"/{map_index}"
        ti = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{mapped}")
        tries = ti.get("try_number") or 1
        query = "full_content=true" if map_index is None else f"full_content=true&map_index={map_index}"
        _, log = self.api_status(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{tries}?{query}"
        )
        content = log.get("content") if isinstance(log, dict) else log
        events = [
            f"{entry.get('level', '')} {entry.get('event', '')}" if isinstance(entry, dict) else str(entry)
            for entry in (content if isinstance(content, list) else [content])
        ]
        return (
            f"task {task_id}{mapped} of {dag_id}/{run_id}: state {ti.get('state')}, try {tries}\n"
            + "\n".join(events[-40:])
            + f"\n--- triggerer log tail:\n{self.log_tail('triggerer', 20)}"
        )

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        return body["value"]


@contextlib.contextmanager
def deployment_of_flows(
    base: Path,
    flows: dict[str, dict[str, Any]],
    *,
    extra_env: dict[str, str] | None = None,
    users: dict[str, str] | None = None,
) -> Iterator[AirflowDeployment]:
    """A started deployment whose DAG folder holds the DAG file users copy (dags/openflow_dags.py,
    with its .airflowignore) and ``flows`` (name -> document) as ``flows/<name>.json``; stopped on
    exit."""
    repo = Path(__file__).resolve().parents[2]
    dags = base / "dags"
    (dags / "flows").mkdir(parents=True)
    for name, document in flows.items():
        (dags / "flows" / f"{name}.json").write_text(json.dumps(document))
    (dags / "openflow_dags.py").write_text((repo / "dags" / "openflow_dags.py").read_text())
    (dags / ".airflowignore").write_text((repo / "dags" / ".airflowignore").read_text())
    deployment = AirflowDeployment(base / "home", dags, extra_env=extra_env, users=users).start()
    try:
        yield deployment
    finally:
        deployment.stop()


def password(user: str) -> str:
    return ADMIN_PASSWORD if user == ADMIN else f"{user}-test-password"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
