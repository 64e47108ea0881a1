"""The short view of ``airflow-openflow run``: one line per step as it finishes (state, duration,
display name), a loop's iterations summarised in one line, and where to read a failed step's log.

``StepView`` is a ``run_flow`` observer (``runner.RunObserver``): while the run runs, a thread
reads the task instances of the run from the metadata database (``compat.metadata``) and writes a
line for each one that has ended. It only reads: the run is the runner's, unchanged.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TextIO

log = logging.getLogger(__name__)

#: Task instance states after which nothing more happens to it in this run.
ENDED = ("success", "failed", "skipped", "upstream_failed", "removed")
_SHOWN = {"success": "ok", "failed": "FAILED", "skipped": "skipped", "upstream_failed": "not run"}


class StepView:
    """Writes to ``out`` one line per task of the run as it ends (mapped tasks: one line once all
    their iterations ended). ``interval``: seconds between two reads of the database."""

    def __init__(self, out: TextIO, *, interval: float = 0.5) -> None:
        self.out = out
        self.interval = interval
        self.lines = 0
        self._names: dict[str, str] = {}
        self._done: set[str] = set()  # task ids whose line was written

    @contextlib.contextmanager
    def __call__(self, dag: Any) -> Iterator[StepView]:
        self._names = {task_id: _display_name(task) for task_id, task in dag.task_dict.items()}
        self._done = set()
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(self.interval):
                self._poll(dag.dag_id)

        thread = threading.Thread(target=watch, name="openflow-step-view", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=10)
            self._poll(dag.dag_id)  # what ended since the last read

    def _poll(self, dag_id: str) -> None:
        from airflow_openflow.compat.metadata import latest_run_task_rows

        try:
            _, rows = latest_run_task_rows(dag_id)
        except Exception as exc:  # e.g. SQLite busy while the scheduling loop writes: next time
            log.debug("step view: cannot read the run: %s", exc)
            return
        by_task: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_task.setdefault(row["task_id"], []).append(row)
        ended = [
            (task_id, tis)
            for task_id, tis in by_task.items()
            if task_id not in self._done and all(ti["state"] in ENDED for ti in tis)
        ]
        ended.sort(key=lambda item: max((_ts(ti["end_date"]) for ti in item[1]), default=0.0))
        for task_id, tis in ended:
            self._done.add(task_id)
            self._write(self.line(self._names.get(task_id, task_id), tis))

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed stderr: the CLI's guard handles it
            self.out.write(text + "\n")
            self.out.flush()
            self.lines += 1

    @staticmethod
    def line(name: str, tis: list[dict[str, Any]]) -> str:
        """``  ok        1.2 s  Price the order``; a mapped task: ``3 iterations`` and the states."""
        mapped = [ti for ti in tis if ti["map_index"] >= 0]
        if not mapped:
            ti = tis[0]
            return f"  {_SHOWN.get(ti['state'], ti['state']):<9}{_duration(ti):>9}  {name}"
        states: dict[str, int] = {}
        for ti in mapped:
            states[ti["state"]] = states.get(ti["state"], 0) + 1
        worst = next((s for s in ("failed", "upstream_failed", "success", "skipped") if s in states), "?")
        counts = ", ".join(f"{n} {_SHOWN.get(s, s)}" for s, n in sorted(states.items()))
        starts = [_ts(ti["start_date"]) for ti in mapped if ti["start_date"] is not None]
        ends = [_ts(ti["end_date"]) for ti in mapped if ti["end_date"] is not None]
        span = f"{max(ends) - min(starts):.1f} s" if starts and ends else "-"
        what = f"{len(mapped)} iteration{'s' if len(mapped) != 1 else ''}: {counts}"
        return f"  {_SHOWN.get(worst, worst):<9}{span:>9}  {name} ({what})"


def failure_lines(
    outcome: Any, log_folder: str | None, copy_to: Any = None, *, run_log: Any = None
) -> list[str]:
    """For a failed run: the failing step's error message and where its task log is. ``copy_to``
    (a path): append the task log there and name that file instead (for a run whose AIRFLOW_HOME,
    and so the task logs, is removed when it ends). A run in process writes no task log files: its
    tasks log into the run's own log (``run_log``, or stderr when that is None)."""
    result = outcome.result if isinstance(outcome.result, dict) else {}
    found = result.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    step_id = str(error.get("step_id") or "")
    failed = [t for t, s in outcome.task_states.items() if s == "failed" and not t.startswith("flow_result")]
    task = next((t for t in failed if t.split("[")[0].split(".")[-1] == step_id), failed[0] if failed else "")
    lines = []
    message = str(error.get("message") or "").strip()
    if message:
        first = message.splitlines()[0]
        lines.append(f"error in step {step_id or task}: {first[:500]}{'...' if len(first) > 500 else ''}")
    path = task_log_path(log_folder, outcome.dag_id, outcome.run_id, task) if task else None
    if path is not None and copy_to is not None:
        with open(path, "rb") as source, open(copy_to, "ab") as target:
            target.write(f"\n===== the log of task {task} ({path}) =====\n".encode())
            target.write(source.read())
        lines.append(f"its log: at the end of {copy_to} (the run's temporary AIRFLOW_HOME is removed)")
    elif path is not None:
        lines.append(f"its log: {path}")
    elif task and getattr(outcome, "mode", None) == "in_process":
        where = run_log if run_log is not None else "above"
        lines.append(f"its log: {where} (the run ran in process: its tasks log into the run's log)")
    return lines


def task_log_path(log_folder: str | None, dag_id: str, run_id: str, task: str) -> str | None:
    """The newest attempt's log file of ``task`` (``id`` or ``id[map_index]``) in Airflow's default
    layout under ``log_folder`` (``[logging] base_log_folder``), or None."""
    if not log_folder:
        return None
    task_id, _, index = task.partition("[")
    parts = [log_folder, f"dag_id={dag_id}", f"run_id={run_id}", f"task_id={task_id}"]
    if index:
        parts.append(f"map_index={index.rstrip(']')}")
    found = glob.glob(os.path.join(*(glob.escape(p) for p in parts), "attempt=*.log"))
    return max(found, key=os.path.getmtime) if found else None


def _display_name(task: Any) -> str:
    return str(getattr(task, "task_display_name", None) or task.task_id)


def _ts(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def _duration(ti: dict[str, Any]) -> str:
    if ti["start_date"] is None or ti["end_date"] is None:
        return "-"
    return f"{(ti['end_date'] - ti['start_date']).total_seconds():.1f} s"
