"""``run_flow`` cost, as ratios against a hand-written DAG run with ``dag.test()`` in the same run.

A 10-step linear python3 flow (each step adds 1 to the previous result) through ``run_flow``, in
its ``auto`` mode (in process for this flow) and in its ``executor`` mode, against the same DAG
written by hand: 10 chained PythonOperators doing the same through XCom, run with ``dag.test()``
(no executor). Every variant runs once to warm up (imports, the in-process Execution API, the
runner's API server), then ROUNDS times in turn; the medians and their ratios are printed.
Run: make bench  (or: python bench/run_flow_time.py [ROUNDS] [STEPS])
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="openflow-bench-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

HAND_WRITTEN = """\
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, chain


def first(x):
    return x + 1


def step(ti, previous):
    return ti.xcom_pull(task_ids=previous) + 1


with DAG(dag_id="bench_hand_written_{steps}", schedule=None, params={{"x": 0}}) as dag:
    tasks = [PythonOperator(task_id="s0", python_callable=first, op_kwargs={{"x": 0}})]
    for i in range(1, {steps}):
        previous = {{"previous": f"s{{i - 1}}"}}
        tasks.append(PythonOperator(task_id=f"s{{i}}", python_callable=step, op_kwargs=previous))
    chain(*tasks)
"""


def flow_document(steps: int) -> dict[str, Any]:
    def py(step_id: str, body: str, **transforms: str) -> dict[str, Any]:
        return {
            "id": step_id,
            "value": {
                "type": "rawscript",
                "language": "python3",
                "content": f"def main({', '.join(transforms)}):\n    {body}\n",
                "input_transforms": {k: {"type": "javascript", "expr": v} for k, v in transforms.items()},
            },
        }

    modules = [py("s0", "return x + 1", x="flow_input.x")]
    modules += [py(f"s{i}", "return v + 1", v=f"results.s{i - 1}") for i in range(1, steps)]
    return {"summary": "bench linear flow", "value": {"modules": modules}}


def hand_written_dag(dags_folder: Path, steps: int) -> Any:
    path = dags_folder / f"bench_hand_written_{steps}.py"
    path.write_text(HAND_WRITTEN.format(steps=steps), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"bench_hand_written_{steps}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    import airflow_openflow
    from airflow_openflow.run_contexts import quiet
    from airflow_openflow.runner import _get_runner

    document = flow_document(steps)

    def run(mode: str) -> Callable[[], None]:
        def call() -> None:
            outcome = airflow_openflow.run_flow(document, {"x": 0}, mode=mode)
            assert (outcome.status, outcome.result) == ("success", steps), outcome

        return call

    started = time.perf_counter()
    run("auto")()  # creates the runner (configuration, metadata database) and warms up
    setup = time.perf_counter() - started
    dag = hand_written_dag(_get_runner().dags, steps)

    def hand_written() -> None:
        with quiet():  # the same console logging as run_flow's
            dag_run = dag.test()
        assert str(dag_run.state) == "success", dag_run.state

    variants: dict[str, Callable[[], None]] = {
        "hand-written DAG, dag.test()": hand_written,
        "run_flow auto (in process)": run("auto"),
        "run_flow executor": run("executor"),
    }
    for call in variants.values():  # warm-up (the executor mode starts its API server here)
        call()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, call in variants.items():
            times[name].append(timed(call))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["hand-written DAG, dag.test()"]
    print(f"{steps}-step linear flow, median of {rounds} rounds (first run_flow incl. setup: {setup:.1f} s)")
    for name, median in medians.items():
        spread = ", ".join(f"{v:.2f}" for v in times[name])
        print(f"  {name:32} {median:6.2f} s  x{median / base:5.2f}   ({spread})")
    airflow_openflow.runner.close_runner()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
