"""A flow's schedule as the DAG's ``schedule``: Windmill schedule files, or the DAG file's override.

Precedence, most specific first: ``load_openflow_dags(..., schedules={"<flow path>": ...})``, then
a ``schedule=`` given to every DAG through ``load_openflow_dags``'s DAG keywords, then the flow's
schedule files (``spec/schedules.py``, ``spec/schedule_files.py``), else no schedule. See
docs/schedules.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.schedule_files import ScheduleFile
from airflow_openflow.spec.schedules import choose_schedule


@dataclass(frozen=True)
class DagSchedule:
    """What ``build_dag`` sets: ``schedule`` for ``DAG(schedule=...)``, ``args`` the inputs of the
    runs the schedule starts (None: no schedule file is used), ``doc`` a paragraph of the DAG's docs."""

    schedule: Any
    args: dict[str, Any] | None
    doc: str


_UNSET = object()


def dag_schedule(
    files: Sequence[ScheduleFile],
    *,
    override: Any = _UNSET,
    source: str = "",
) -> tuple[DagSchedule | None, list[Problem]]:
    """The flow's DAG schedule and the problems of its schedule files (errors make the flow invalid).

    ``override``: the DAG file's schedule for this flow (``None``, a cron or preset string, a
    timetable...), which wins over the files (they are not used then); ``source`` names it in the
    docs. Returns ``(None, [])`` when there is neither: ``build_dag`` keeps its default.
    """
    if override is not _UNSET:
        doc = f"Schedule: `{_describe(override)}`, set by the DAG file ({source or 'load_openflow_dags'})"
        if files:
            doc += f"; the flow's schedule files are not used ({_names(f.file for f in files)})"
        return DagSchedule(schedule=override, args=None, doc=doc + "."), []
    chosen, problems = choose_schedule(files)
    if chosen is None:
        return None, problems
    if not chosen.enabled:
        doc = (
            f"Schedule: none. The flow's schedule ({_names(chosen.disabled_files)}) is disabled "
            "(`enabled: false`), so the DAG is not scheduled; trigger it by hand."
        )
        return DagSchedule(schedule=None, args=None, doc=doc), problems
    from airflow.sdk import CronTriggerTimetable, MultipleCronTriggerTimetable

    timetable: Any
    if len(chosen.crons) == 1:
        timetable = CronTriggerTimetable(chosen.crons[0], timezone=chosen.timezone)
    else:
        timetable = MultipleCronTriggerTimetable(*chosen.crons, timezone=chosen.timezone)
    crons = ", ".join(f"`{c}`" for c in chosen.windmill_crons)
    airflow = ", ".join(f"`{c}`" for c in chosen.crons)
    doc = (
        f"Schedule: {crons} (Windmill) in `{chosen.timezone}`, i.e. Airflow cron {airflow}, from "
        f"{_names(chosen.files)}. Scheduled runs get the schedule's args as their inputs: "
        f"`{json.dumps(chosen.args, ensure_ascii=False, sort_keys=True, default=str)}`."
    )
    if chosen.disabled_files:
        doc += f" Disabled, not used: {_names(chosen.disabled_files)}."
    return DagSchedule(schedule=timetable, args=dict(chosen.args), doc=doc), problems


def _names(files: Any) -> str:
    return ", ".join(f"`{Path(f).name}`" for f in files)


def _describe(value: Any) -> str:
    if value is None or isinstance(value, str):
        return str(value)
    summary = getattr(value, "summary", None)
    return f"{type(value).__name__} {summary}" if isinstance(summary, str) else type(value).__name__
