"""Start-up cost of a TypeScript step (deno, bun) against a python3 step, measured in the same run.

1. The runner alone (runtime/scripts): a trivial ``main`` returning its argument, R times per
   language, each in a fresh working folder, as a step runs it (files written, process started,
   result read; the wmill bridge opened for TS). Median and ratio to python3.
2. Through Airflow (``run_flow``): one flow with a trivial python3, deno and bun step, run F
   times; each task's duration as Airflow records it (start to end of the task instance, the
   task process's own start-up included). Median and ratio to python3.

Run: python bench/ts_startup.py [R] [F]   (defaults 20 and 3)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="openflow-bench-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

SCRIPTS = {
    "python3": "def main(x):\n    return x\n",
    "deno": "export function main(x: number) { return x; }\n",
    "bun": "export function main(x: number) { return x; }\n",
}


def runner_alone(repeats: int) -> dict[str, float]:
    from airflow_openflow.runtime.scripts import run_script

    medians = {}
    for language, code in SCRIPTS.items():
        times = []
        for i in range(repeats + 1):
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                assert run_script(language, code, {"x": i}, step_id="s", workdir=Path(folder)) == i
                if i:  # the first run warms the caches (transpiler, page cache)
                    times.append(time.perf_counter() - started)
        medians[language] = statistics.median(times)
    return medians


def through_airflow(runs: int) -> dict[str, float]:
    import airflow_openflow

    steps = [
        {
            "id": language.replace("3", ""),
            "value": {
                "type": "rawscript",
                "language": language,
                "content": code,
                "input_transforms": {"x": {"type": "static", "value": 1}},
            },
        }
        for language, code in SCRIPTS.items()
    ]
    document = {"summary": "startup", "value": {"modules": steps}}
    durations: dict[str, list[float]] = {language: [] for language in SCRIPTS}
    for _ in range(runs):
        outcome = airflow_openflow.run_flow(document, {})
        assert outcome.status == "success", outcome.result
        for task_id, seconds in _task_durations(outcome).items():
            language = "python3" if task_id == "python" else task_id
            if language in durations:
                durations[language].append(seconds)
    return {language: statistics.median(values) for language, values in durations.items()}


def _task_durations(outcome: Any) -> dict[str, float]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == outcome.dag_id, TaskInstance.run_id == outcome.run_id
            )
        ).all()
        return {ti.task_id: (ti.end_date - ti.start_date).total_seconds() for ti in rows if ti.end_date}


def report(title: str, medians: dict[str, float]) -> None:
    print(title)
    base = medians["python3"]
    for language, seconds in medians.items():
        print(f"  {language:8s} {seconds * 1000:8.1f} ms   x{seconds / base:6.2f} of python3")


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    report(f"runner alone (median of {repeats}):", runner_alone(repeats))
    if runs:
        report(f"task duration through run_flow (median of {runs} runs):", through_airflow(runs))


if __name__ == "__main__":
    main()
