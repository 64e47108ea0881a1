"""Windmill schedule files (``<path>.schedule.yaml``) of the git-sync layout: which flow each one
runs, and which schedule a flow gets from its files. Reading one file is spec/schedule_files.py.

A schedule file holds ``schedule`` (a cron expression whose first field is the seconds),
``timezone`` (IANA), ``script_path`` (the flow's workspace path, e.g. ``f/examples/poll``),
``is_flow``, ``args`` (the scheduled run's inputs) and ``enabled``. Its own path comes from its file
name; it is linked to its flow by ``script_path`` only, so it may sit anywhere in the repository.

This runs at every DAG-file parse: the ``*.schedule.*`` names the walk for flows saw
(``spec/discover.py``; a walk of its own where there was none), then each schedule file (a few
lines) is read with libyaml's C loader. No Airflow import.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_openflow.spec.discover import walk_workspace
from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.locate import with_lines_from_file
from airflow_openflow.spec.paths import SCHEDULE_SUFFIXES, flow_folder_of
from airflow_openflow.spec.schedule_files import OVERRIDE_HINT, ScheduleFile, read_schedule_file
from airflow_openflow.spec.subflows import _CANDIDATES as _FLOW_CANDIDATES

#: How many folders above a schedule file are tried as the repository root for ``script_path``.
_MAX_LEVELS = 12


@dataclass(frozen=True, slots=True)
class ChosenSchedule:
    """What a flow's schedule files amount to: one Airflow schedule (several crons at most when
    their timezone and args are the same), or ``enabled=False`` when every file is disabled."""

    enabled: bool
    crons: tuple[str, ...] = ()  # five-field crons / Airflow presets, one per enabled file
    windmill_crons: tuple[str, ...] = ()
    timezone: str = "UTC"
    args: dict[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # the files used
    disabled_files: tuple[str, ...] = ()  # files with ``enabled: false``, not used


# -- finding the files and their flows -------------------------------------------------------------


def find_schedule_files(
    folder: str | os.PathLike[str], *, recursive: bool = True, ignore_syntax: str | None = "glob"
) -> list[Path]:
    """Every ``*.schedule.yaml`` / ``.yml`` / ``.json`` under ``folder`` (only in it when not
    ``recursive``), sorted; by name only. Folders are entered as flows are found
    (``spec/discover.py``: not hidden ones, flow folders, ``node_modules``, nor what
    ``.airflowignore`` or ``wmill.yaml`` leave out)."""
    if not recursive:
        top = os.path.abspath(folder)
        try:
            names = os.listdir(top)
        except OSError:
            return []
        return sorted(Path(top, n) for n in names if n.lower().endswith(SCHEDULE_SUFFIXES))
    return sorted(
        entry.path
        for entry in walk_workspace(folder, ignore_syntax=ignore_syntax)
        if not entry.in_flow_folder and entry.path.name.lower().endswith(SCHEDULE_SUFFIXES)
    )


def flow_key(path: Path) -> Path:
    """One key per flow, whichever of its paths is given (``x.flow/`` or ``x.flow/flow.yaml``)."""
    return (flow_folder_of(path) or path).resolve()


@dataclass
class ScheduleIndex:
    """The schedule files under a folder, by the flow they run (keyed by :func:`flow_key`)."""

    by_flow: dict[Path, list[ScheduleFile]] = field(default_factory=dict)
    #: files with errors whose flow could not be told (reported on their own)
    orphans: list[ScheduleFile] = field(default_factory=list)
    #: valid files whose ``script_path`` names no flow found: not used (``validate`` warns)
    unresolved: list[ScheduleFile] = field(default_factory=list)

    def for_flow(self, path: Path) -> list[ScheduleFile]:
        return list(self.by_flow.get(flow_key(path), ()))


def index_schedules(
    folder: str | os.PathLike[str],
    *,
    recursive: bool = True,
    ignore_syntax: str | None = "glob",
    files: Iterable[Path] | None = None,
) -> ScheduleIndex:
    """Read every schedule file under ``folder`` and attach it to its flow.

    ``script_path`` is resolved like a sub-flow's path: against the schedule file's folder, then
    each folder above it (the first where ``<script_path>.flow/`` or another flow layout exists
    wins), so a repository with several environments side by side (``dev/f/...``, ``prod/f/...``)
    keeps each schedule with its own environment's flow. A schedule for a script (``is_flow:
    false``) is skipped. A file too broken to name its flow is attached to the flow of the same
    name next to it (Windmill's primary schedule has its flow's path), else kept as an orphan.
    ``files``: the schedule files under ``folder`` when already found (``Discovery.schedule_files``
    of the same folder, same ``ignore_syntax``); else the folder is walked.
    """
    index = ScheduleIndex()
    if files is None:
        files = find_schedule_files(folder, recursive=recursive, ignore_syntax=ignore_syntax)
    for path in files:
        schedule = read_schedule_file(path)
        if not schedule.is_flow:  # a script's schedule, whatever else is wrong with it
            continue
        target = _resolve_flow(schedule.script_path, path) if schedule.script_path else None
        if target is None and schedule.errors:
            target = _resolve_flow(_schedule_name(path), path, levels=1)
        if target is None:
            (index.orphans if schedule.errors else index.unresolved).append(schedule)
            continue
        index.by_flow.setdefault(flow_key(target), []).append(schedule)
    return index


def _schedule_name(path: Path) -> str:
    name = path.name
    for suffix in SCHEDULE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _resolve_flow(workspace_path: str, schedule_file: Path, *, levels: int = _MAX_LEVELS) -> Path | None:
    relative = workspace_path.strip("/")
    if not relative or ".." in Path(relative).parts:
        return None
    folder = schedule_file.resolve().parent
    for root in [folder, *folder.parents][:levels]:
        for pattern in _FLOW_CANDIDATES:
            candidate = root / pattern.format(p=relative)
            if candidate.is_file():
                return candidate
    return None


# -- one schedule per DAG ---------------------------------------------------------------------------


def choose_schedule(files: Sequence[ScheduleFile]) -> tuple[ChosenSchedule | None, list[Problem]]:
    """The flow's one Airflow schedule from its schedule files, and the problems found.

    Rule (an Airflow DAG has one schedule): disabled files are left out; one enabled file is the
    schedule; several enabled files become one schedule with every cron (Airflow's
    ``MultipleCronTriggerTimetable``) when their timezone and args are equal, else it is an error
    naming the files. No enabled file: ``enabled=False`` (the DAG is not scheduled).
    Problems: the files' errors and warnings, plus the conflict error.
    """
    if not files:
        return None, []
    ordered = sorted(files, key=lambda f: f.file)
    problems = [p for f in ordered for p in (*f.errors, *f.warnings)]
    if any(f.errors for f in ordered):
        return None, problems
    enabled = [f for f in ordered if f.enabled]
    disabled = tuple(f.file for f in ordered if not f.enabled)
    if not enabled:
        return ChosenSchedule(enabled=False, disabled_files=disabled), problems
    first = enabled[0]
    for other in enabled[1:]:
        differ = [n for n in ("timezone", "args") if getattr(other, n) != getattr(first, n)]
        if differ:
            conflict = Problem(
                f"this flow has {len(enabled)} enabled schedules "
                f"({', '.join(Path(f.file).name for f in enabled)}) whose {differ[0]} differ; an Airflow "
                "DAG has one schedule, so they can only be combined when their timezone and args are equal",
                file=other.file,
                json_path=differ[0],
                hint=f"disable all but one (enabled: false), make them equal, {OVERRIDE_HINT}",
            )
            return None, [*problems, *with_lines_from_file([conflict], other.file)]
    crons = tuple(dict.fromkeys(f.airflow_cron for f in enabled if f.airflow_cron))
    return (
        ChosenSchedule(
            enabled=True,
            crons=crons,
            windmill_crons=tuple(f.cron for f in enabled if f.cron),
            timezone=first.timezone or "UTC",
            args=dict(first.args),
            files=tuple(f.file for f in enabled),
            disabled_files=disabled,
        ),
        problems,
    )


def orphan_problems(index: ScheduleIndex) -> Iterable[Problem]:
    """Errors of schedule files that could not be attached to a flow."""
    for schedule in index.orphans:
        yield from schedule.errors


def unresolved_problems(index: ScheduleIndex) -> list[Problem]:
    """A warning for each valid schedule file whose ``script_path`` names no flow found (the loader
    leaves such a file out without a word: no DAG gets its schedule)."""
    problems: list[Problem] = []
    for schedule in index.unresolved:
        problem = Problem(
            f"this schedule runs the flow {schedule.script_path!r}, but no flow with that path is found "
            "(looked for from the schedule file's folder and each folder above it), so no DAG gets "
            "this schedule",
            file=schedule.file,
            json_path="script_path",
            hint="fix script_path (the flow's Windmill path, e.g. f/folder/name), or remove the file",
            severity="warning",
        )
        problems.extend(with_lines_from_file([problem], schedule.file))
    return problems


def schedule_folder(path: Path, root: Path, *, found_in_root: bool) -> tuple[Path, bool]:
    """(folder, recursive): where a flow's schedule files are read from. A flow found by searching
    ``root`` takes them from all of ``root``; a flow named on its own (``render``/``run`` of one
    file) from its git-sync root (``spec.workspace.git_sync_root_of``), or when it has none from
    its own folder only, never from every folder under its parent."""
    from airflow_openflow.spec.workspace import git_sync_root_of

    if found_in_root:
        return root, True
    git_sync_root = git_sync_root_of(path)
    return (git_sync_root, True) if git_sync_root else (root, False)
