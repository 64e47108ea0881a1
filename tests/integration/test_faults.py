"""Faults on a real deployment (PostgreSQL, CeleryExecutor with Redis, one Celery worker):

- SIGKILL of the Celery pool process that runs a step (the ``airflow supervisor`` process: it
  supervises the task process and sends its heartbeats), of the whole Celery worker (detected by
  the heartbeat timeout; a new worker is started), and of the step's task process itself: the
  step's Windmill ``retry`` (Airflow retries) runs it again, the flow completes with the right
  result, the steps before it do not run again and the ones after it run once. A bash step's
  script dies with its killed task process. Without a ``retry`` the flow fails.
- The scheduler stopped and started again in the middle of a sequential for-loop: the run
  completes, every iteration ran exactly once and in order, and the loop's result is right.

The heartbeat timeout is lowered so a task whose heartbeats stopped is detected in seconds, not
Airflow's default 5 minutes (docs/restart.md#faults).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.flows import script
from tests.integration.deployment import AirflowDeployment

REPO = Path(__file__).resolve().parents[2]

#: How long the scheduler lets a running task go without a heartbeat (Airflow's default: 300 s).
HEARTBEAT_TIMEOUT = 20

FAULT_ENV = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    # The supervisor heartbeats at least this often (default 5 s): well inside the timeout.
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
}


# b's first try records its pid (written whole: a temporary file renamed) and sleeps 60 s, or until
# the test writes b.release; a later try sees the marker and returns at once. Every step appends its
# id to runs.log when it starts.
KILLED_STEP = """\
import os
import pathlib
import time


def main(work, x):
    work = pathlib.Path(work)
    with open(work / "runs.log", "a") as f:
        f.write("b\\n")
    marker = work / "b.first_try"
    if not marker.exists():
        marker.write_text("")
        (work / "b.pid.tmp").write_text(str(os.getpid()))
        os.rename(work / "b.pid.tmp", work / "b.pid")
        for _ in range(600):  # 60 s, or until the test releases it
            if (work / "b.release").exists():
                break
            time.sleep(0.1)
        (work / "b.first_try_returned").write_text("")
        return {"from": "the first try, which should have been killed"}
    return x + 10
"""

KILL_FLOW = {
    "summary": "a -> b (retried; its first try sleeps until killed) -> c",
    "schema": {"type": "object", "properties": {"work": {"type": "string"}}, "required": ["work"]},
    "value": {
        "modules": [
            script(
                "a",
                "def main(work):\n"
                "    with open(work + '/runs.log', 'a') as f:\n"
                "        f.write('a\\n')\n"
                "    return 1\n",
                work="flow_input.work",
            ),
            {
                **script("b", KILLED_STEP, work="flow_input.work", x="previous_result"),
                "retry": {"constant": {"attempts": 1, "seconds": 1}},
            },
            script(
                "c",
                "def main(work, y):\n"
                "    with open(work + '/runs.log', 'a') as f:\n"
                "        f.write('c\\n')\n"
                "    return {'c': y * 2}\n",
                work="flow_input.work",
                y="previous_result",
            ),
        ]
    },
}

# The same flow without b's retry: a killed try is b's last.
KILL_WITHOUT_RETRY_FLOW = {
    **KILL_FLOW,
    "summary": "a -> b (not retried; sleeps until killed) -> c",
    "value": {
        "modules": [{k: v for k, v in m.items() if k != "retry"} for m in KILL_FLOW["value"]["modules"]]
    },
}

# A bash step: its script runs in a child of the task process.
KILLED_BASH_STEP = """\
w="$1"
echo b >> "$w/runs.log"
if [ ! -e "$w/b.first_try" ]; then
  touch "$w/b.first_try"
  echo $$ > "$w/b.pid.tmp" && mv "$w/b.pid.tmp" "$w/b.pid"
  sleep 30
  echo "the first try went on" > "$w/late"
fi
echo "retried"
"""

KILL_BASH_FLOW = {
    "summary": "a retried bash step whose first try sleeps until killed",
    "schema": {"type": "object", "properties": {"work": {"type": "string"}}, "required": ["work"]},
    "value": {
        "modules": [
            {
                "id": "b",
                "value": {
                    "type": "rawscript",
                    "language": "bash",
                    "content": KILLED_BASH_STEP,
                    "input_transforms": {"w": {"type": "javascript", "expr": "flow_input.work"}},
                },
                "retry": {"constant": {"attempts": 1, "seconds": 1}},
            }
        ]
    },
}

ITERATION = """\
import time


def main(work, i, seconds):
    with open(work + "/iterations.log", "a") as f:
        f.write(f"start {i}\\n")
    time.sleep(seconds)
    with open(work + "/iterations.log", "a") as f:
        f.write(f"end {i}\\n")
    return i * 10
"""

LOOP_FLOW = {
    "summary": "a sequential loop of 4 iterations (seconds[i] s each), then a step using its result",
    "schema": {
        "type": "object",
        "properties": {"work": {"type": "string"}, "seconds": {"type": "array", "items": {"type": "number"}}},
        "required": ["work", "seconds"],
    },
    "value": {
        "modules": [
            {
                "id": "loop",
                "value": {
                    "type": "forloopflow",
                    "parallel": False,
                    "skip_failures": False,
                    "iterator": {"type": "javascript", "expr": "[0, 1, 2, 3]"},
                    "modules": [
                        script(
                            "work",
                            ITERATION,
                            work="flow_input.work",
                            i="flow_input.iter.value",
                            seconds="flow_input.seconds[flow_input.iter.index]",
                        )
                    ],
                },
            },
            script(
                "after",
                "def main(xs):\n    return {'items': xs, 'sum': sum(xs)}\n",
                xs="results.loop",
            ),
        ]
    },
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    base = tmp_path_factory.mktemp("faults")
    dags = base / "dags"
    (dags / "flows").mkdir(parents=True)
    (dags / "flows" / "kill_demo.json").write_text(json.dumps(KILL_FLOW))
    (dags / "flows" / "kill_without_retry_demo.json").write_text(json.dumps(KILL_WITHOUT_RETRY_FLOW))
    (dags / "flows" / "kill_bash_demo.json").write_text(json.dumps(KILL_BASH_FLOW))
    (dags / "flows" / "scheduler_restart_demo.json").write_text(json.dumps(LOOP_FLOW))
    (dags / "openflow_dags.py").write_text((REPO / "dags" / "openflow_dags.py").read_text())
    (dags / ".airflowignore").write_text((REPO / "dags" / ".airflowignore").read_text())
    deployment = AirflowDeployment(base / "home", dags, extra_env=FAULT_ENV).start()
    try:
        yield deployment
    finally:
        deployment.stop()


# -- helpers ------------------------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], bool], timeout: float, explain: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s\n{explain()}")


def parent_pid(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def kill_if_alive(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def scheduler_starts(deployment: AirflowDeployment) -> int:
    log = deployment.home / "scheduler.log"
    return log.read_text(errors="replace").count("Starting the scheduler") if log.exists() else 0


def mapped_instances(
    deployment: AirflowDeployment, dag_id: str, run_id: str, task_id: str
) -> list[dict[str, Any]]:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/listMapped"
    return list(deployment.api("GET", path)["task_instances"])


def describe_iterations(deployment: AirflowDeployment, dag_id: str, run_id: str, task_id: str) -> str:
    """Each task instance of a mapped task: state and try; the log of those that did not succeed."""
    instances = mapped_instances(deployment, dag_id, run_id, task_id)
    summary = [f"{task_id}[{ti['map_index']}]: {ti['state']}, try {ti['try_number']}" for ti in instances]
    details = [
        deployment.describe_task(dag_id, run_id, task_id, ti["map_index"])
        for ti in instances
        if ti["state"] != "success"
    ]
    return "\n".join(summary + details)


def run_the_kill_flow(
    deployment: AirflowDeployment, work: Path, dag_id: str = "kill_demo"
) -> tuple[str, int]:
    """Triggers the flow and waits until b's first try sleeps; returns the run id and the pid of
    b's task process."""
    deployment.wait_for_dag(dag_id)
    run_id = deployment.trigger(dag_id, {"work": str(work)})
    pid_file = work / "b.pid"
    wait_for(
        "b's first try started",
        pid_file.exists,
        180,
        lambda: deployment.describe_task(dag_id, run_id, "b") + deployment.log_tail("celery-worker"),
    )
    return run_id, int(pid_file.read_text())


def check_the_flow_recovered(deployment: AirflowDeployment, run_id: str, work: Path) -> None:
    dag_id = "kill_demo"
    state = deployment.wait_for_run(dag_id, run_id, timeout=150)
    explained = deployment.describe_task(dag_id, run_id, "b")
    assert state == "success", f"{explained}\n--- scheduler:\n{deployment.log_tail('scheduler')}"
    tis = deployment.task_instances(dag_id, run_id)
    # b ran twice (the killed try and its retry); a, which had finished, and c ran once.
    assert (work / "runs.log").read_text().split() == ["a", "b", "b", "c"], explained
    assert tis["a"]["try_number"] == 1 and tis["c"]["try_number"] == 1, tis
    assert tis["b"]["try_number"] == 2, explained
    assert deployment.xcom(dag_id, run_id, "b") == 11, explained
    assert deployment.xcom(dag_id, run_id, "flow_result") == {"c": 22}


# -- tests --------------------------------------------------------------------------------------


def test_a_killed_celery_pool_process_is_retried_and_the_flow_completes(
    deployment: AirflowDeployment, tmp_path: Path
) -> None:
    """SIGKILL of the Celery pool process supervising b's task: its heartbeats stop, Celery
    reports the task lost, and b's retry runs on a fresh pool process of the same worker."""
    run_id, task_pid = run_the_kill_flow(deployment, tmp_path)
    pool_pid = parent_pid(task_pid)
    worker = deployment.processes["celery-worker"]
    try:
        # The pool process is a child of the Celery worker, running Airflow's task supervisor.
        assert parent_pid(pool_pid) == worker.pid, command_line(pool_pid)
        assert "airflow supervisor" in command_line(pool_pid), command_line(pool_pid)
        assert command_line(task_pid).startswith("airflow worker -- "), command_line(task_pid)
        assert deployment.task_instances("kill_demo", run_id)["a"]["state"] == "success"
        os.kill(pool_pid, signal.SIGKILL)
        killed = time.monotonic()
        check_the_flow_recovered(deployment, run_id, tmp_path)
        recovered = time.monotonic() - killed
        # Detected well before the 60 s the first try would have slept.
        assert recovered < 60, f"recovery took {recovered:.0f} s"
        assert worker.poll() is None, "the Celery worker itself died"

        # Airflow 3.3.2 does not stop a task process whose supervisor died: b's first try may still
        # be running (docs/restart.md#faults). Whatever it does when it ends, the run keeps the
        # retry's result: the orphan has no way to report (its supervisor held the connection).
        if alive(task_pid):
            (tmp_path / "b.release").write_text("")
            wait_for("the orphaned first try ended", lambda: not alive(task_pid), 30, lambda: "")
        assert deployment.api("GET", f"/dags/kill_demo/dagRuns/{run_id}")["state"] == "success"
        assert deployment.task_instances("kill_demo", run_id)["b"]["try_number"] == 2
        assert deployment.xcom("kill_demo", run_id, "b") == 11
        assert deployment.xcom("kill_demo", run_id, "flow_result") == {"c": 22}
    finally:
        kill_if_alive(task_pid)  # the orphaned first try, if it outlived its supervisor


def test_a_killed_celery_worker_is_detected_by_the_heartbeat_timeout_and_retried(
    deployment: AirflowDeployment, tmp_path: Path
) -> None:
    """SIGKILL of the whole Celery worker (its process group: the main process and its pool), then
    a new worker: nobody reports b's try, so the scheduler fails it when its heartbeats have been
    missing for ``task_instance_heartbeat_timeout`` s, and the new worker runs b's retry."""
    run_id, task_pid = run_the_kill_flow(deployment, tmp_path)
    try:
        assert deployment.task_instances("kill_demo", run_id)["a"]["state"] == "success"
        deployment.kill_component("celery-worker")
        killed = time.monotonic()
        deployment.start_worker()
        check_the_flow_recovered(deployment, run_id, tmp_path)
        recovered = time.monotonic() - killed
        # The supervisor heartbeated at most 2 s before the kill.
        assert HEARTBEAT_TIMEOUT - 3 <= recovered < HEARTBEAT_TIMEOUT + 60, f"recovery took {recovered:.0f} s"
        # Airflow's audit log (Browse > Audit Log in the UI) shows why the try failed.
        query = urllib.parse.urlencode(
            {"dag_id": "kill_demo", "run_id": run_id, "event": "heartbeat timeout"}
        )
        timed_out = deployment.api("GET", f"/eventLogs?{query}")
        assert timed_out["total_entries"] == 1, (timed_out, deployment.log_tail("scheduler"))
    finally:
        kill_if_alive(task_pid)  # the task process has a process group of its own: it outlives the worker


def test_a_killed_task_process_is_retried_and_the_flow_completes(
    deployment: AirflowDeployment, tmp_path: Path
) -> None:
    """SIGKILL of b's own task process: its supervisor sees it die and fails the try, and b's
    retry runs."""
    run_id, task_pid = run_the_kill_flow(deployment, tmp_path)
    assert "airflow supervisor" in command_line(parent_pid(task_pid))
    os.kill(task_pid, signal.SIGKILL)
    killed = time.monotonic()
    check_the_flow_recovered(deployment, run_id, tmp_path)
    assert time.monotonic() - killed < 60


@pytest.mark.parametrize(
    "seconds",
    [
        # The next iteration can only be scheduled by the new scheduler.
        pytest.param([3, 3, 3, 3], id="iteration-1-ends-while-the-scheduler-is-down"),
        # Iteration 1 outlasts the outage: the new scheduler adopts its running Celery task.
        pytest.param([3, 30, 3, 3], id="iteration-1-runs-across-the-restart"),
    ],
)
def test_a_scheduler_restart_in_a_sequential_loop_runs_every_iteration_once(
    deployment: AirflowDeployment, tmp_path: Path, seconds: list[int]
) -> None:
    """SIGTERM to the scheduler while iteration 1 runs, a start again a few seconds later."""
    across = seconds[1] > 3
    dag_id = "scheduler_restart_demo"
    deployment.wait_for_dag(dag_id)
    log = tmp_path / "iterations.log"
    run_id = deployment.trigger(dag_id, {"work": str(tmp_path), "seconds": seconds})

    def lines() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    wait_for(
        "iteration 1 started",
        lambda: "start 1" in lines(),
        180,
        lambda: describe_iterations(deployment, dag_id, run_id, "loop_iterations.work"),
    )
    starts = scheduler_starts(deployment)
    code = deployment.stop_component("scheduler")
    stopped_at = lines()
    if not across:
        wait_for("iteration 1 ended", lambda: "end 1" in lines(), 60, lambda: str(lines()))
    time.sleep(5)
    deployment.start_component("scheduler")
    wait_for(
        "the scheduler started again",
        lambda: scheduler_starts(deployment) > starts,
        90,
        lambda: deployment.log_tail("scheduler"),
    )
    restarted_at = lines()
    if across:
        assert "end 1" not in restarted_at, f"iteration 1 ended before the restart: {restarted_at}"

    state = deployment.wait_for_run(dag_id, run_id, timeout=240)
    explained = (
        f"scheduler exit code {code}; iterations log when stopped: {stopped_at}, "
        f"when started again: {restarted_at}\n"
        + describe_iterations(deployment, dag_id, run_id, "loop_iterations.work")
        + f"\n--- scheduler:\n{deployment.log_tail('scheduler')}"
    )
    assert state == "success", explained
    assert lines() == [f"{edge} {i}" for i in range(4) for edge in ("start", "end")], explained
    assert deployment.xcom(dag_id, run_id, "loop") == [0, 10, 20, 30], explained
    assert deployment.xcom(dag_id, run_id, "flow_result") == {"items": [0, 10, 20, 30], "sum": 60}
    iterations = mapped_instances(deployment, dag_id, run_id, "loop_iterations.work")
    tries = {ti["map_index"]: ti["try_number"] for ti in iterations}
    assert tries == {0: 1, 1: 1, 2: 1, 3: 1}, explained


def test_a_killed_task_process_takes_its_bash_script_with_it(
    deployment: AirflowDeployment, tmp_path: Path
) -> None:
    """SIGKILL of the task process of a bash step: the script (a child of the task process, in a
    session of its own) is killed with it instead of going on beside the retry."""
    dag_id = "kill_bash_demo"
    run_id, script_pid = run_the_kill_flow(deployment, tmp_path, dag_id)
    try:
        task_pid = parent_pid(script_pid)
        assert command_line(task_pid).startswith("airflow worker -- "), command_line(task_pid)
        os.kill(task_pid, signal.SIGKILL)
        wait_for("the script ended", lambda: not alive(script_pid), 10, lambda: command_line(script_pid))
        state = deployment.wait_for_run(dag_id, run_id, timeout=120)
        explained = deployment.describe_task(dag_id, run_id, "b")
        assert state == "success", explained
        assert deployment.xcom(dag_id, run_id, "flow_result") == "retried", explained
        assert (tmp_path / "runs.log").read_text().split() == ["b", "b"], explained
        assert not (tmp_path / "late").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script_pid, signal.SIGKILL)  # the script's session: its `sleep` may go on


def test_a_killed_step_without_retry_fails_the_flow(deployment: AirflowDeployment, tmp_path: Path) -> None:
    """Without a ``retry`` the killed try is the step's last: the flow fails with an error naming
    the step, and the steps after it do not run."""
    dag_id = "kill_without_retry_demo"
    run_id, task_pid = run_the_kill_flow(deployment, tmp_path, dag_id)
    os.kill(task_pid, signal.SIGKILL)
    state = deployment.wait_for_run(dag_id, run_id, timeout=120)
    explained = deployment.describe_task(dag_id, run_id, "b")
    assert state == "failed", explained
    tis = deployment.task_instances(dag_id, run_id)
    assert (tis["b"]["state"], tis["c"]["state"]) == ("failed", "upstream_failed"), explained
    assert (tmp_path / "runs.log").read_text().split() == ["a", "b"]
    error = deployment.xcom(dag_id, run_id, "flow_result")["error"]
    assert (error["name"], error["step_id"]) == ("StepDidNotComplete", "b"), error
