"""Load on a real deployment: RUNS concurrent runs of an OpenFlow flow against the same DAG written
by hand, as ratios measured in the same run on the same deployment.

The deployment is the test one (tests/integration/deployment.py): PostgreSQL metadata database,
CeleryExecutor with Redis, API server, scheduler, DAG processor, triggerer and one Celery worker
with 4 slots (``[core] parallelism`` 4). Its DAG folder holds the DAG file users copy
(dags/openflow_dags.py) with one flow, and a hand-written TaskFlow DAG of the same shape:

  1. a parallel loop over 20 numbers n..n+19, squaring each (dynamic task mapping by hand);
  2. a sequential loop over k = 1..5 (a chain by hand) whose iterations have BODY steps (1 by
     default): the sum of the squares times k, then BODY - 1 steps that each add 1;
  3. a branch on the parity of the sum of the 5 iterations' results (``@task.branch`` by hand),
     whose chosen step returns {"parity": ..., "sum": ...}.

``max_active_runs_per_dag`` is at least RUNS, so every run of a batch is active at once. After one
untimed warm-up run of each DAG, RUNS runs of the flow are triggered over the REST API at once,
waited for, then RUNS runs of the hand-written DAG. Every run must succeed with its expected
result (the flow's ``flow_result`` XCom, the hand-written DAG's last task's) and leave no task
instance in a non-final state. Prints each batch's wall time (first trigger -> last run's end),
task instances per run, task instances per second, and the ratios openflow / hand-written.
Nothing is asserted about timings. Every process is stopped by its pid at the end, also on failure.

The first step of a sequential iteration starts in the triggerer and waits there (deferred, no
worker slot held) for the last step of the previous iteration; "deferred" counts the task
instances that were deferred.

Run: make bench-deployment  (or: .venv/bin/python bench/deployment_load.py [RUNS] [BODY], from the
repo root; RUNS is 50 by default). OPENFLOW_BENCH_KEEP=1 keeps the deployment's AIRFLOW_HOME (its
components' logs), which is kept anyway when a check fails; OPENFLOW_BENCH_AIRFLOW__<SECTION>__<KEY>
=value sets an Airflow option of the deployment (e.g. ..._WORKERS__MIN_HEARTBEAT_INTERVAL=1).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.integration.deployment, when run as bench/deployment_load.py

from tests.integration.deployment import AirflowDeployment  # noqa: E402

FLOW_DAG = "load_flow"
HAND_DAG = "load_hand_written"
PARALLEL, SEQUENTIAL = 20, 5
FINAL_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def _py(step_id: str, code: str, **transforms: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": code,
            "input_transforms": {k: {"type": "javascript", "expr": v} for k, v in transforms.items()},
        },
    }


def _parity_step(step_id: str, parity: str) -> dict[str, Any]:
    code = f"def main(xs):\n    return {{'parity': '{parity}', 'sum': sum(xs)}}\n"
    return _py(step_id, code, xs="results.scaled")


SUM_OF_SQUARES = "results.squares.reduce((a, b) => a + b, 0)"


def sequential_body(body: int) -> list[dict[str, Any]]:
    """One iteration of the sequential loop: ``scale`` (the sum of the squares times k), then
    ``body - 1`` steps that each add 1."""
    code = "def main(total, k):\n    return total * k\n"
    steps = [_py("scale", code, total=SUM_OF_SQUARES, k="flow_input.iter.value")]
    steps += [
        _py(f"plus_{i}", "def main(v):\n    return v + 1\n", v="previous_result") for i in range(1, body)
    ]
    return steps


def flow(body: int) -> dict[str, Any]:
    return {
        "summary": "load: a parallel loop, a sequential loop, a branchone",
        "schema": {
            "type": "object",
            "properties": {"n": {"type": "integer", "default": 0}},
            "required": ["n"],
        },
        "value": {
            "modules": [
                {
                    "id": "squares",
                    "value": {
                        "type": "forloopflow",
                        "parallel": True,
                        "skip_failures": False,
                        "iterator": {
                            "type": "javascript",
                            "expr": f"Array.from({{length: {PARALLEL}}}, (_, i) => flow_input.n + i)",
                        },
                        "modules": [
                            _py("square", "def main(v):\n    return v * v\n", v="flow_input.iter.value")
                        ],
                    },
                },
                {
                    "id": "scaled",
                    "value": {
                        "type": "forloopflow",
                        "parallel": False,
                        "skip_failures": False,
                        "iterator": {
                            "type": "javascript",
                            "expr": json.dumps(list(range(1, SEQUENTIAL + 1))),
                        },
                        "modules": sequential_body(body),
                    },
                },
                {
                    "id": "parity",
                    "value": {
                        "type": "branchone",
                        "branches": [
                            {
                                "summary": "even",
                                "expr": "results.scaled.reduce((a, b) => a + b, 0) % 2 === 0",
                                "modules": [_parity_step("even", "even")],
                            }
                        ],
                        "default": [_parity_step("odd", "odd")],
                    },
                },
            ]
        },
    }


HAND_WRITTEN = '''\
"""The load bench's flow written by hand (bench/deployment_load.py)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import chain, dag, task


@dag(dag_id="{dag_id}", schedule=None, params={{"n": 0}})
def load_hand_written() -> None:
    @task
    def items(**context: Any) -> list[int]:
        n = context["params"]["n"]
        return [n + i for i in range({parallel})]

    @task
    def square(v: int) -> int:
        return v * v

    @task
    def scale(squares: Any, k: int) -> int:
        return sum(squares) * k

    @task
    def plus(v: int) -> int:
        return v + 1

    @task
    def scaled(xs: list[int]) -> list[int]:
        return list(xs)

    @task.branch
    def parity(xs: list[int]) -> str:
        return "even" if sum(xs) % 2 == 0 else "odd"

    @task
    def even(xs: list[int]) -> dict[str, Any]:
        return {{"parity": "even", "sum": sum(xs)}}

    @task
    def odd(xs: list[int]) -> dict[str, Any]:
        return {{"parity": "odd", "sum": sum(xs)}}

    @task(trigger_rule="none_failed_min_one_success")
    def result(**context: Any) -> Any:
        chosen = [r for r in context["ti"].xcom_pull(task_ids=["even", "odd"]) if r is not None]
        return chosen[0]

    squares = square.expand(v=items())
    steps, lasts = [], []  # the sequential loop: one chain through every iteration's steps
    for k in range(1, {sequential} + 1):
        last = scale.override(task_id=f"scale_{{k}}")(squares, k)
        steps.append(last)
        for i in range(1, {body}):
            last = plus.override(task_id=f"plus_{{k}}_{{i}}")(last)
            steps.append(last)
        lasts.append(last)
    chain(*steps)
    values = scaled(lasts)
    branches = [even(values), odd(values)]
    parity(values) >> branches
    branches >> result()


hand_written = load_hand_written()
'''


def expected(n: int, body: int) -> dict[str, Any]:
    total = sum((n + i) ** 2 for i in range(PARALLEL)) * sum(range(1, SEQUENTIAL + 1))
    total += SEQUENTIAL * (body - 1)
    return {"parity": "even" if total % 2 == 0 else "odd", "sum": total}


def dags_folder(base: Path, body: int) -> Path:
    """The layout of a user's DAG folder: the DAG file users copy, its flows folder (ignored by the
    DAG processor) and the hand-written DAG next to it."""
    dags = base / "dags"
    (dags / "flows").mkdir(parents=True)
    (dags / "flows" / f"{FLOW_DAG}.json").write_text(json.dumps(flow(body), indent=1))
    (dags / "openflow_dags.py").write_text((REPO / "dags" / "openflow_dags.py").read_text())
    (dags / ".airflowignore").write_text((REPO / "dags" / ".airflowignore").read_text())
    hand_written = HAND_WRITTEN.format(dag_id=HAND_DAG, parallel=PARALLEL, sequential=SEQUENTIAL, body=body)
    (dags / f"{HAND_DAG}.py").write_text(hand_written)
    return dags


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class Batch:
    dag_id: str
    runs: int
    wall: float  # first trigger -> the last run's end_date
    durations: list[float]  # each run's start_date -> end_date
    tis: int  # task instances of the batch (every map index)
    on_worker: int  # of which ran in a worker (the others were skipped by the scheduler)
    deferred: int  # of which waited in the triggerer for the previous iteration of a sequential loop

    @property
    def tis_per_run(self) -> float:
        return self.tis / self.runs

    @property
    def tis_per_second(self) -> float:
        return self.tis / self.wall


def run_batch(
    deployment: AirflowDeployment, dag_id: str, result_task: str, runs: int, body: int, tag: str
) -> Batch:
    """Triggers ``runs`` runs at once (conf n = 0..runs-1), waits for all, checks them."""
    deployment.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    started = time.time()
    run_ids: dict[str, int] = {}
    for n in range(runs):
        request = {"dag_run_id": f"{tag}_{n:03d}", "logical_date": None, "conf": {"n": n}}
        run_ids[str(deployment.api("POST", f"/dags/{dag_id}/dagRuns", request)["dag_run_id"])] = n
    triggered = time.time() - started
    timeout = 600 + 45 * runs
    states = _wait(deployment, dag_id, set(run_ids), started + timeout)
    ended = time.time()
    failures = [run_id for run_id, state in states.items() if state != "success"]

    durations: list[float] = []
    last_end = started
    tis = on_worker = 0
    stuck: list[str] = []
    wrong: list[str] = []
    for run_id, n in sorted(run_ids.items(), key=lambda item: item[1]):
        run = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        if run.get("end_date") and run.get("start_date"):
            durations.append(_time(run["end_date"]) - _time(run["start_date"]))
            last_end = max(last_end, _time(run["end_date"]))
        instances = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")
        for ti in instances["task_instances"]:
            tis += 1
            on_worker += bool(ti.get("hostname"))
            if ti["state"] not in FINAL_STATES:
                stuck.append(f"{run_id} {ti['task_id']}[{ti['map_index']}] {ti['state']}")
        if run_id not in failures:
            got = deployment.xcom(dag_id, run_id, result_task)
            if got != expected(n, body):
                wrong.append(f"{run_id}: {got!r}, expected {expected(n, body)!r}")
    problems = [f"run {r} ended {states[r]}" for r in failures] + wrong + [f"stuck: {s}" for s in stuck]
    if problems:
        raise AssertionError(f"{dag_id}: {len(problems)} problem(s):\n  " + "\n  ".join(problems[:40]))
    print(
        f"  {dag_id}: {runs} runs triggered in {triggered:.1f} s, all ended after {ended - started:.0f} s",
        file=sys.stderr,
    )
    deferred = sum(_deferrals(deployment.home / "logs" / f"dag_id={dag_id}" / f"run_id={r}") for r in run_ids)
    return Batch(dag_id, runs, last_end - started, durations, tis, on_worker, deferred)


def _deferrals(logs: Path) -> int:
    """Task instances of a run whose log says a loop iteration waited for an earlier one in the
    triggerer (it started there: operators/body.py logs "this iteration starts")."""
    return sum("this iteration starts" in path.read_text(errors="replace") for path in logs.rglob("*.log"))


def _wait(deployment: AirflowDeployment, dag_id: str, run_ids: set[str], deadline: float) -> dict[str, str]:
    states: dict[str, str] = {}
    last_report = time.monotonic()
    while True:
        states = {}
        offset = 0
        while True:  # the API pages at 100 by default
            page = deployment.api("GET", f"/dags/{dag_id}/dagRuns?limit=100&offset={offset}")
            states.update(
                {r["dag_run_id"]: r["state"] for r in page["dag_runs"] if r["dag_run_id"] in run_ids}
            )
            offset += len(page["dag_runs"])
            if not page["dag_runs"] or offset >= page["total_entries"]:
                break
        if all(states.get(r) in ("success", "failed") for r in run_ids):
            return states
        if time.time() > deadline:
            counts = Counter(states.get(r, "?") for r in run_ids)
            raise AssertionError(f"{dag_id}: runs not finished before the timeout: {dict(counts)}")
        if time.monotonic() - last_report > 30:
            counts = Counter(states.get(r, "?") for r in run_ids)
            print(f"    {dag_id}: {dict(sorted(counts.items()))}", file=sys.stderr)
            last_report = time.monotonic()
        time.sleep(2)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    body = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    base = Path(tempfile.mkdtemp(prefix="openflow-load-"))
    settings = {
        "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": str(max(runs, 16)),
        # Airflow's default, which the figures in docs/performance.md were measured with (the test
        # deployment lowers it to 1 s to shorten the test suite).
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "5",
    }
    prefix = "OPENFLOW_BENCH_AIRFLOW__"
    settings.update(
        {"AIRFLOW__" + k[len(prefix) :]: v for k, v in os.environ.items() if k.startswith(prefix)}
    )
    deployment = AirflowDeployment(base / "home", dags_folder(base, body), extra_env=settings)
    ok = False
    try:
        started = time.perf_counter()
        deployment.start()
        for dag_id in (FLOW_DAG, HAND_DAG):
            deployment.wait_for_dag(dag_id, timeout=300)
        print(f"deployment up and both DAGs parsed in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        batches = [("openflow", FLOW_DAG, "flow_result"), ("hand-written", HAND_DAG, "result")]
        for _, dag_id, task in batches:  # warm-up: one checked run each, not timed
            run_batch(deployment, dag_id, task, 1, body, "warmup")
        results = {
            name: run_batch(deployment, dag_id, task, runs, body, "load") for name, dag_id, task in batches
        }
        report(results, runs, body, settings)
        ok = True
    finally:
        deployment.stop()
        if ok and not os.environ.get("OPENFLOW_BENCH_KEEP"):
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"deployment logs kept in {base / 'home'}", file=sys.stderr)


def report(results: dict[str, Batch], runs: int, body: int, settings: dict[str, str]) -> None:
    flow, hand = results["openflow"], results["hand-written"]
    print(
        f"{runs} concurrent runs per DAG on one deployment (CeleryExecutor, 1 worker x 4 slots); "
        f"parallel loop of {PARALLEL}, sequential loop of {SEQUENTIAL} x {body} step(s), a branch"
    )
    print("  settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    header = ("wall", "TIs/run", "(worker)", "TI/s", "run median", "run max", "deferred")
    widths = (8, 8, 8, 6, 11, 8, 9)
    print(f"  {'':14} " + " ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for name, batch in results.items():
        print(
            f"  {name:14} {batch.wall:7.1f}s {batch.tis_per_run:8.1f} {batch.on_worker / runs:8.1f} "
            f"{batch.tis_per_second:6.2f} {statistics.median(batch.durations):10.1f}s "
            f"{max(batch.durations):7.1f}s {batch.deferred:9d}"
        )
    print(
        f"  openflow / hand-written: wall x{flow.wall / hand.wall:.2f}, "
        f"TI/s x{flow.tis_per_second / hand.tis_per_second:.2f}, "
        f"wall per task instance x{(flow.wall / flow.tis) / (hand.wall / hand.tis):.2f}"
    )


if __name__ == "__main__":
    main()
