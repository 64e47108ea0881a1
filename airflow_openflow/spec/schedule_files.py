"""One Windmill schedule file (``<path>.schedule.yaml``, ``.json``) read and checked: its fields,
and its cron expression as Airflow's. Which flow it runs, and which schedule a flow gets from its
files, is spec/schedules.py.

No Airflow import; ``croniter`` (a dependency of Airflow, pure Python) checks the cron expression
only when there is one to check.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.locate import with_lines
from airflow_openflow.spec.yaml_io import load_yaml

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
OVERRIDE_HINT = "or set this flow's schedule in the DAG file with load_openflow_dags(..., schedules={...})"


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
                ("use '*' as the year or drop it, " + OVERRIDE_HINT),
            )
        if not re.fullmatch(r"0+", seconds):
            return (
                None,
                f"the seconds field is {seconds!r}: Airflow schedules have a one-minute resolution, "
                "so only a seconds field of 0 can be kept",
                f"make the first field 0 (e.g. '0 {' '.join(minute_fields)}'), {OVERRIDE_HINT}",
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
