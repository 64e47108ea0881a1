"""Windmill schedule files (``<path>.schedule.yaml``) of the git-sync layout, and which flow each one runs.

A schedule file holds ``schedule`` (a cron expression whose first field is the seconds),
``timezone`` (IANA), ``script_path`` (the flow's workspace path, e.g. ``f/examples/poll``),
``is_flow``, ``args`` (the scheduled run's inputs) and ``enabled``. Its own path comes from its file
name; it is linked to its flow by ``script_path`` only, so it may sit anywhere in the repository.

This runs at every DAG-file parse: the ``*.schedule.*`` names the walk for flows saw
(``spec/discover.py``; a walk of its own where there was none), then each
schedule file (a few lines) is read with libyaml's C loader. No Airflow import; ``croniter`` (a
dependency of Airflow, pure Python) checks the cron expression only when there is one to check.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_openflow.spec.discover import walk_workspace
from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.locate import with_lines, with_lines_from_file
from airflow_openflow.spec.paths import SCHEDULE_SUFFIXES, flow_folder_of
from airflow_openflow.spec.subflows import _CANDIDATES as _FLOW_CANDIDATES
from airflow_openflow.spec.yaml_io import load_yaml

#: How many folders above a schedule file are tried as the repository root for ``script_path``.
_MAX_LEVELS = 12
#: croner's named schedules (Windmill's cron parser); mapped to Airflow's presets.
_PRESETS = {
    "@yearly": "@yearly",
    "@annually": "@yearly",
    "@monthly": "@monthly",
    "@weekly": "@weekly",
    "@daily": "@daily",
    "@midnight": "@daily",
    "@hourly": "@hourly",
}
#: Windmill schedule options that change what a run does but have no equivalent here: a warning
#: when set (a falsy value, as in ``wmill schedule new``'s template, is silent).
_UNSUPPORTED_OPTIONS = (
    "on_failure",
    "on_recovery",
    "on_success",
    "retry",
    "no_flow_overlap",
    "paused_until",
    "dynamic_skip",
    "tag",
)
_HINT_OVERRIDE = "or set this flow's schedule in the DAG file with load_openflow_dags(..., schedules={...})"


@dataclass(frozen=True, slots=True)
class ScheduleFile:
    """One schedule file as read. ``errors`` empty means every field below is usable."""

    file: str
    script_path: str | None = None
    is_flow: bool = True
    cron: str | None = None  # Windmill's expression, as written
    airflow_cron: str | None = None  # the same schedule as a five-field cron (or an Airflow preset)
    timezone: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    summary: str | None = None
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()


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


# -- reading one file ---------------------------------------------------------------------------


def read_schedule_file(path: str | os.PathLike[str]) -> ScheduleFile:
    """Read and check one schedule file; problems are returned in the result, never raised."""
    file = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        return ScheduleFile(
            file, errors=(Problem(f"cannot read the schedule file: {exc.strerror or exc}", file=file),)
        )
    except UnicodeDecodeError as exc:
        return ScheduleFile(
            file, errors=(Problem(f"the schedule file is not UTF-8 text ({exc.reason})", file=file),)
        )
    return parse_schedule_text(text, file=file)


def parse_schedule_text(text: str, *, file: str | None = None) -> ScheduleFile:
    """Parse a schedule file's text (JSON when ``file`` ends in ``.json``, else YAML)."""
    name = file or "<schedule>"
    try:
        data = json.loads(text) if name.lower().endswith(".json") else load_yaml(text)
    except json.JSONDecodeError as exc:
        problem = Problem(f"invalid JSON: {exc.msg}", file=file, line=exc.lineno, hint="fix the JSON syntax")
        return ScheduleFile(name, errors=(problem,))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = Problem(
            f"invalid YAML: {getattr(exc, 'problem', None) or exc}",
            file=file,
            line=None if mark is None else mark.line + 1,
            hint="fix the YAML syntax at that position",
        )
        return ScheduleFile(name, errors=(problem,))
    result = parse_schedule(data, file=file)
    errors, warnings = result.errors, result.warnings
    if errors or warnings:
        located = with_lines([*errors, *warnings], text)
        count = len(errors)  # in the file's order
        errors = tuple(sorted(located[:count], key=lambda p: p.line or 0))
        warnings = tuple(sorted(located[count:], key=lambda p: p.line or 0))
    return dataclasses.replace(result, errors=errors, warnings=warnings)


def parse_schedule(data: Any, *, file: str | None = None) -> ScheduleFile:
    """Check a parsed schedule document (problems carry JSON paths but no lines)."""
    name = file or "<schedule>"
    errors: list[Problem] = []
    warnings: list[Problem] = []

    def error(message: str, json_path: str, hint: str | None = None) -> None:
        errors.append(Problem(message, file=file, json_path=json_path, hint=hint))

    if not isinstance(data, Mapping):
        error("a schedule file must be a mapping (schedule, timezone, script_path, is_flow, args)", "")
        return ScheduleFile(name, errors=tuple(errors))

    script_path = data.get("script_path")
    if not isinstance(script_path, str) or not script_path.strip():
        error(
            "script_path must be the workspace path of the flow to run (e.g. f/examples/poll)", "script_path"
        )
        script_path = None
    is_flow = data.get("is_flow", True)
    if not isinstance(is_flow, bool):
        error(f"is_flow must be true or false, not {is_flow!r}", "is_flow")
        is_flow = True
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        error(f"enabled must be true or false, not {enabled!r}", "enabled")
        enabled = True
    args = data.get("args")
    if args is None:
        args = {}
    elif not isinstance(args, Mapping):
        error(f"args must be a mapping of the flow's inputs, not {type(args).__name__}", "args")
        args = {}

    timezone = data.get("timezone")
    if not isinstance(timezone, str) or not timezone.strip():
        error("timezone is missing", "timezone", "give an IANA timezone, e.g. timezone: Etc/UTC")
        timezone = None
    else:
        timezone = timezone.strip()
        problem = _timezone_problem(timezone)
        if problem is not None:
            error(problem, "timezone", "use an IANA name such as Europe/Paris, America/New_York or Etc/UTC")

    cron = data.get("schedule")
    airflow_cron = None
    if not isinstance(cron, str) or not cron.strip():
        error("schedule must be a cron expression (seconds first, e.g. '0 0 9 * * *')", "schedule")
        cron = None
    else:
        cron_version = data.get("cron_version")
        airflow_cron, problem, hint = to_airflow_cron(cron, cron_version=cron_version)
        if problem is not None:
            error(problem, "schedule", hint)

    for option in _UNSUPPORTED_OPTIONS:
        if data.get(option):
            warnings.append(
                Problem(
                    f"{option} is not supported: ignored (the scheduled runs happen without it)",
                    file=file,
                    json_path=option,
                    severity="warning",
                )
            )
    summary = data.get("summary")
    return ScheduleFile(
        name,
        script_path=script_path.strip().strip("/") if script_path else None,
        is_flow=is_flow,
        cron=cron.strip() if cron else None,
        airflow_cron=airflow_cron,
        timezone=timezone,
        args=dict(args),
        enabled=enabled,
        summary=summary if isinstance(summary, str) and summary else None,
        errors=tuple(errors),
        warnings=tuple(warnings),
    )


def to_airflow_cron(
    expression: str, *, cron_version: Any = None
) -> tuple[str | None, str | None, str | None]:
    """Windmill's cron (``sec min hour dom month dow [year]``) -> ``(five-field cron, None, None)``,
    or ``(None, problem, hint)``. Airflow schedules have a one-minute resolution: the seconds field
    must be 0. Five fields (croner accepts them: seconds = 0) and croner's ``@daily``-style names
    are kept as they are; a year field is accepted only as ``*``."""
    text = " ".join(expression.split())
    if text.lower() in _PRESETS:
        return _PRESETS[text.lower()], None, None
    fields = text.split(" ")
    if len(fields) == 5:
        minute_fields = fields
    elif len(fields) in (6, 7):
        seconds, minute_fields = fields[0], fields[1:6]
        if len(fields) == 7 and fields[6] not in ("*", "?"):
            return (
                None,
                f"the year field {fields[6]!r} cannot be kept: Airflow crons have no year",
                ("use '*' as the year or drop it, " + _HINT_OVERRIDE),
            )
        if not re.fullmatch(r"0+", seconds):
            return (
                None,
                f"the seconds field is {seconds!r}: Airflow schedules have a one-minute resolution, "
                "so only a seconds field of 0 can be kept",
                f"make the first field 0 (e.g. '0 {' '.join(minute_fields)}'), {_HINT_OVERRIDE}",
            )
    else:
        return (
            None,
            f"malformed cron {expression!r}: expected 6 fields (seconds minutes hours day-of-month "
            f"month day-of-week), got {len(fields)}",
            "e.g. '0 0 9 * * 1-5' for 09:00 on weekdays",
        )
    if str(cron_version or "").lower() == "v1" and re.search(r"\d", minute_fields[4]):
        return (
            None,
            "cron_version v1 numbers the days of the week from 1 (Sunday) to 7, unlike Airflow",
            "write the days as names (MON-FRI) or move the schedule to cron_version v2",
        )
    cron = " ".join(minute_fields)
    problem = _cron_problem(cron)
    if problem is not None:
        return (
            None,
            f"malformed cron {expression!r}: {problem}",
            "check the expression against the cron syntax",
        )
    return cron, None, None


def _cron_problem(cron: str) -> str | None:
    from croniter import croniter  # only when a schedule file exists

    try:
        croniter(cron)
    except Exception as exc:  # croniter raises several types (CroniterBadCronError, ValueError, KeyError)
        return str(exc) or type(exc).__name__
    return None


def _timezone_problem(name: str) -> str | None:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown timezone {name!r}"
    return None


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
                hint=f"disable all but one (enabled: false), make them equal, {_HINT_OVERRIDE}",
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
