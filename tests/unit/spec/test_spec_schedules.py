"""Windmill schedule files (spec/schedule_files.py, spec/schedules.py) and what they make of a
flow's DAG schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from spec_helpers import line, write

from airflow_openflow.spec.schedule_files import read_schedule_file, to_airflow_cron
from airflow_openflow.spec.schedules import choose_schedule, index_schedules

FLOW = """
summary: poll
value:
  modules:
    - id: a
      value:
        type: rawscript
        language: python3
        content: "def main(who):\\n    return 'hello ' + who\\n"
        input_transforms:
          who: {type: javascript, expr: flow_input.who}
schema:
  type: object
  properties:
    who: {type: string}
  required: [who]
"""

GOOD = """
schedule: 0 0 9 * * 1-5
timezone: Europe/Paris
script_path: f/examples/poll
is_flow: true
args:
  who: scheduler
  n: 3
enabled: true
"""


def _schedule(tmp_path: Path, text: str, name: str = "f/examples/poll.schedule.yaml") -> Path:
    return write(tmp_path, name, text)


def _repo(tmp_path: Path, schedule: str | None = GOOD) -> Path:
    write(tmp_path, "f/examples/poll.flow/flow.yaml", FLOW)
    write(tmp_path, "f/examples/other.flow/flow.yaml", "summary: other\nvalue:\n  modules: []\n")
    if schedule is not None:
        _schedule(tmp_path, schedule)
    return tmp_path


def test_a_good_file(tmp_path: Path) -> None:
    schedule = read_schedule_file(_schedule(tmp_path, GOOD))
    assert schedule.errors == () and schedule.warnings == ()
    assert schedule.cron == "0 0 9 * * 1-5"
    assert schedule.airflow_cron == "0 9 * * 1-5"
    assert schedule.timezone == "Europe/Paris"
    assert schedule.script_path == "f/examples/poll"
    assert schedule.args == {"who": "scheduler", "n": 3}
    assert schedule.enabled is True and schedule.is_flow is True


def test_a_json_schedule_file_and_defaults(tmp_path: Path) -> None:
    path = _schedule(
        tmp_path,
        '{"schedule": "0 30 6 * * *", "timezone": "Etc/UTC", "script_path": "f/examples/poll", '
        '"is_flow": true}',
        name="f/examples/poll.schedule.json",
    )
    schedule = read_schedule_file(path)
    assert schedule.errors == ()
    assert (schedule.airflow_cron, schedule.args, schedule.enabled) == ("30 6 * * *", {}, True)


@pytest.mark.parametrize(
    ("windmill", "airflow"),
    [
        ("0 */5 * * * *", "*/5 * * * *"),
        ("00 0 0 1 * *", "0 0 1 * *"),
        ("0 0 12 * * MON-FRI *", "0 12 * * MON-FRI"),  # a year field of '*' is dropped
        ("0 12 * * *", "0 12 * * *"),  # croner accepts five fields (seconds 0)
        ("@daily", "@daily"),
        ("@midnight", "@daily"),
    ],
)
def test_windmill_crons_become_airflow_crons(windmill: str, airflow: str) -> None:
    assert to_airflow_cron(windmill) == (airflow, None, None)


def test_a_non_zero_seconds_field_is_an_error_with_file_line_and_path(tmp_path: Path) -> None:
    path = _schedule(tmp_path, GOOD.replace("schedule: 0 0 9", "schedule: 30 0 9"))
    schedule = read_schedule_file(path)
    (error,) = schedule.errors
    assert error.file == str(path) and error.json_path == "schedule"
    assert error.line == line(path, "schedule:")
    assert "seconds field is '30'" in error.message and "one-minute resolution" in error.message
    assert error.hint is not None and "0 0 9 * * 1-5" in error.hint
    assert schedule.airflow_cron is None
    for every_second in ("* * * * * *", "*/10 * * * * *", "0,30 * * * * *"):
        assert to_airflow_cron(every_second)[0] is None


def test_an_unknown_timezone_is_an_error(tmp_path: Path) -> None:
    path = _schedule(tmp_path, GOOD.replace("Europe/Paris", "Europe/Atlantis"))
    (error,) = read_schedule_file(path).errors
    assert error.json_path == "timezone" and error.line == line(path, "timezone:")
    assert "unknown timezone 'Europe/Atlantis'" in error.message
    assert f"{path}:{error.line} at timezone" in error.format()


@pytest.mark.parametrize(
    ("cron", "needle"),
    [
        ("0 0 25 * * *", "malformed cron"),  # hour 25
        ("0 61 9 * * *", "malformed cron"),  # minute 61
        ("0 0 9 * * MON-FUNDAY", "malformed cron"),
        ("every day", "expected 6 fields"),
        ("0 0 9 * * * 2030", "year field"),
    ],
)
def test_a_malformed_cron_is_an_error(tmp_path: Path, cron: str, needle: str) -> None:
    path = _schedule(tmp_path, GOOD.replace("0 0 9 * * 1-5", cron))
    (error,) = read_schedule_file(path).errors
    assert needle in error.message and error.json_path == "schedule"
    assert error.line == line(path, "schedule:")


def test_cron_version_v1_numbers_weekdays_differently(tmp_path: Path) -> None:
    path = _schedule(tmp_path, GOOD + "cron_version: v1\n")
    (error,) = read_schedule_file(path).errors
    assert "cron_version v1" in error.message
    named = _schedule(tmp_path, GOOD.replace("1-5", "MON-FRI") + "cron_version: v1\n", name="b.schedule.yaml")
    assert read_schedule_file(named).errors == ()


def test_wrong_types_and_missing_fields(tmp_path: Path) -> None:
    path = _schedule(tmp_path, "schedule: 0 0 9 * * *\nis_flow: yes\nargs: [1]\nenabled: 'no'\n")
    messages = {p.json_path: p.message for p in read_schedule_file(path).errors}
    assert set(messages) == {"script_path", "is_flow", "args", "enabled", "timezone"}
    # YAML 1.2 (as Windmill's CLI): `yes` is a string, not a boolean.
    assert "'yes'" in messages["is_flow"]


def test_unsupported_options_are_warnings(tmp_path: Path) -> None:
    path = _schedule(tmp_path, GOOD + "on_failure: f/alerts/slack\nno_flow_overlap: true\nretry: {}\n")
    schedule = read_schedule_file(path)
    assert schedule.errors == ()
    assert sorted(w.json_path for w in schedule.warnings) == ["no_flow_overlap", "on_failure"]
    assert all(w.severity == "warning" and w.line for w in schedule.warnings)


def test_disabled_schedule_gives_no_timetable(tmp_path: Path) -> None:
    path = _schedule(tmp_path, GOOD.replace("enabled: true", "enabled: false"))
    chosen, problems = choose_schedule([read_schedule_file(path)])
    assert problems == [] and chosen is not None
    assert chosen.enabled is False and chosen.crons == () and chosen.disabled_files == (str(path),)


def test_schedules_are_found_by_script_path(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    # Anywhere in the repository, linked by script_path only; a script's schedule is skipped.
    _schedule(repo, GOOD.replace("0 0 9", "0 0 18"), name="f/schedules/evening.schedule.yaml")
    _schedule(repo, GOOD.replace("is_flow: true", "is_flow: false"), name="f/scripts/x.schedule.yaml")
    _schedule(repo, GOOD.replace("f/examples/poll", "f/examples/nowhere"), name="f/n.schedule.yaml")
    index = index_schedules(repo)
    found = index.for_flow(repo / "f/examples/poll.flow/flow.yaml")
    assert sorted(Path(s.file).name for s in found) == ["evening.schedule.yaml", "poll.schedule.yaml"]
    assert index.for_flow(repo / "f/examples/other.flow") == []
    assert index.orphans == []


def test_environments_side_by_side_keep_their_own_schedules(tmp_path: Path) -> None:
    for env, hour in (("dev", "7"), ("prod", "9")):
        write(tmp_path, f"{env}/f/examples/poll.flow/flow.yaml", FLOW)
        _schedule(tmp_path, GOOD.replace("0 0 9", f"0 0 {hour}"), name=f"{env}/f/examples/poll.schedule.yaml")
    index = index_schedules(tmp_path)
    (prod,) = index.for_flow(tmp_path / "prod/f/examples/poll.flow")
    assert prod.airflow_cron == "0 9 * * 1-5"
    (dev,) = index.for_flow(tmp_path / "dev/f/examples/poll.flow")
    assert dev.airflow_cron == "0 7 * * 1-5"


def test_a_broken_file_is_attached_to_the_flow_of_its_name(tmp_path: Path) -> None:
    repo = _repo(tmp_path, schedule="schedule: [unclosed\n")
    write(repo, "f/lost.schedule.yaml", "schedule: 0 0 9 * * *\n")
    index = index_schedules(repo)
    (broken,) = index.for_flow(repo / "f/examples/poll.flow")
    assert broken.errors and "invalid YAML" in broken.errors[0].message
    (orphan,) = index.orphans
    assert orphan.file.endswith("lost.schedule.yaml")


def _files(tmp_path: Path, *texts: str) -> list[Any]:
    names = [f"s{i}.schedule.yaml" for i in range(len(texts))]
    return [
        read_schedule_file(_schedule(tmp_path, text, name)) for text, name in zip(texts, names, strict=True)
    ]


def test_several_schedules_with_equal_args_combine(tmp_path: Path) -> None:
    files = _files(
        tmp_path,
        GOOD,
        GOOD.replace("0 0 9", "0 30 17"),
        GOOD.replace("0 0 9", "0 0 1").replace("enabled: true", "enabled: false"),
    )
    chosen, problems = choose_schedule(files)
    assert problems == [] and chosen is not None
    assert chosen.crons == ("0 9 * * 1-5", "30 17 * * 1-5")
    assert chosen.args == {"who": "scheduler", "n": 3} and chosen.timezone == "Europe/Paris"
    assert [Path(f).name for f in chosen.disabled_files] == ["s2.schedule.yaml"]


@pytest.mark.parametrize(
    ("change", "json_path"),
    [(("who: scheduler", "who: someone"), "args"), (("Europe/Paris", "Asia/Tokyo"), "timezone")],
)
def test_several_schedules_that_differ_are_an_error(
    tmp_path: Path, change: tuple[str, str], json_path: str
) -> None:
    files = _files(tmp_path, GOOD, GOOD.replace(*change))
    chosen, problems = choose_schedule(files)
    assert chosen is None
    (error,) = problems
    assert error.json_path == json_path and error.file is not None and error.file.endswith("s1.schedule.yaml")
    assert error.line == line(Path(error.file), json_path + ":")
    assert "one schedule" in error.message and "schedules=" in (error.hint or "")


# -- the DAG side: load_openflow_dags ----------------------------------------------------------------


def test_the_dag_gets_the_schedule_and_scheduled_runs_the_args(tmp_path: Path) -> None:
    from airflow_openflow import load_openflow_dags

    dags = load_openflow_dags(_repo(tmp_path), strict=True)
    dag = dags["f__examples__poll"]
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 9 * * 1-5", "Europe/Paris")
    assert dag.get_task("a").plan.flow.schedule_args == {"who": "scheduler", "n": 3}
    assert "poll.schedule.yaml" in dag.doc_md and '"who": "scheduler"' in dag.doc_md
    # Airflow refuses a schedule on a DAG with a required param without default: `who` is optional
    # in the trigger form (a scheduled run gets it from the args).
    assert dag.params["who"] is None
    assert type(dags["f__examples__other"].timetable).__name__ == "NullTimetable"


def test_a_disabled_schedule_leaves_the_dag_unscheduled_and_says_so(tmp_path: Path) -> None:
    from airflow_openflow import load_openflow_dags

    dag = load_openflow_dags(_repo(tmp_path, GOOD.replace("enabled: true", "enabled: false")), strict=True)[
        "f__examples__poll"
    ]
    assert type(dag.timetable).__name__ == "NullTimetable"
    assert "disabled" in dag.doc_md and "poll.schedule.yaml" in dag.doc_md
    assert dag.get_task("a").plan.flow.schedule_args is None


def test_a_bad_schedule_makes_only_its_flow_invalid(tmp_path: Path) -> None:
    from airflow_openflow import load_openflow_dags

    repo = _repo(tmp_path, GOOD.replace("schedule: 0 0 9", "schedule: 15 0 9"))
    dags = load_openflow_dags(repo)
    bad = dags["f__examples__poll"]
    assert bad.task_ids == ["invalid_flow_document"]
    schedule_file = repo / "f/examples/poll.schedule.yaml"
    assert f"{schedule_file}:{line(schedule_file, 'schedule:')} at schedule" in bad.doc_md
    assert dags["f__examples__other"].task_ids == ["flow_result"]


def test_the_dag_file_overrides_the_schedule_per_flow(tmp_path: Path) -> None:
    from airflow.sdk import CronTriggerTimetable

    from airflow_openflow import load_openflow_dags

    repo = _repo(tmp_path)
    dags = load_openflow_dags(repo, strict=True, schedules={"f/examples/poll": None})
    dag = dags["f__examples__poll"]
    assert type(dag.timetable).__name__ == "NullTimetable"
    assert dag.get_task("a").plan.flow.schedule_args is None
    assert "set by the DAG file" in dag.doc_md and "not used" in dag.doc_md

    # A broken schedule file is not read for an overridden flow; a timetable is taken as it is.
    _schedule(repo, GOOD.replace("Europe/Paris", "Nowhere/At_all"))
    timetable = CronTriggerTimetable("0 6 * * *", timezone="Asia/Tokyo")
    dags = load_openflow_dags(
        repo, strict=True, schedules={"f/examples/poll": timetable, "f/examples/other": "@hourly"}
    )
    assert dags["f__examples__poll"].timetable == timetable
    assert dags["f__examples__other"].timetable.expression == "0 * * * *"


def test_an_override_key_that_names_no_flow_is_reported(tmp_path: Path) -> None:
    from airflow_openflow import load_openflow_dags

    with pytest.raises(ValueError, match="no flow has the path 'f/examples/pol'"):
        load_openflow_dags(_repo(tmp_path), strict=True, schedules={"f/examples/pol": None})


def test_a_schedule_for_every_dag_wins_over_the_files(tmp_path: Path) -> None:
    from airflow_openflow import load_openflow_dags

    dag = load_openflow_dags(_repo(tmp_path), strict=True, schedule=None)["f__examples__poll"]
    assert type(dag.timetable).__name__ == "NullTimetable"
    assert dag.get_task("a").plan.flow.schedule_args is None
