""".airflowignore (Airflow's glob and regexp rules) and wmill.yaml includes/excludes in discovery."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_helpers import write

from airflow_openflow.spec import discover_flows
from airflow_openflow.spec.ignore import _minimatch
from airflow_openflow.spec.schedules import find_schedule_files

FLOW = "summary: a flow\nvalue:\n  modules: []\n"


def _flows(root: Path, *names: str) -> None:
    for name in names:
        write(root, name, FLOW)


def _found(root: Path, **kwargs: object) -> list[str]:
    return [p.relative_to(root).as_posix() for p in discover_flows(root, **kwargs)]  # type: ignore[arg-type]


def test_airflowignore_glob_follows_airflow(tmp_path: Path) -> None:
    _flows(
        tmp_path,
        "keep.yaml",
        "drafts/a.yaml",  # a name pattern: any level
        "f/drafts/b.flow/flow.yaml",
        "legacy/c.yaml",  # anchored to the .airflowignore's folder
        "f/legacy/d.yaml",
        "f/x.tmp.yaml",
        "f/y.tmp.yaml",  # re-included by a later '!'
        "only_dirs.yaml/e.yaml",
        "f/only_dirs.yaml",  # a file named like the dir-only pattern: kept
        "f/sub/g.yaml",
        "f/sub/h.yaml",
    )
    write(
        tmp_path, ".airflowignore", "drafts\n/legacy/  # old ones\n*.tmp.yaml\n!y.tmp.yaml\nonly_dirs.yaml/\n"
    )
    write(tmp_path, "f/sub/.airflowignore", "h.yaml\n")  # adds to the rules above, for its folder
    assert _found(tmp_path) == [
        "f/legacy/d.yaml",
        "f/only_dirs.yaml",
        "f/sub/g.yaml",
        "f/y.tmp.yaml",
        "keep.yaml",
    ]


def test_airflowignore_regexp_matches_the_path_under_the_root(tmp_path: Path) -> None:
    _flows(tmp_path, "keep.yaml", "legacy/a.yaml", "f/old_b.flow/flow.yaml", "f/c.yaml")
    write(tmp_path, ".airflowignore", "^legacy\nold_\n[unclosed\n")  # an invalid regexp is left out
    assert _found(tmp_path, ignore_syntax="regexp") == ["f/c.yaml", "keep.yaml"]


def test_airflowignore_above_the_root_is_not_read(tmp_path: Path) -> None:
    """A DAG folder commonly ignores its flows folder so that Airflow does not look there."""
    write(tmp_path, ".airflowignore", "flows/\n")
    _flows(tmp_path, "flows/a.yaml")
    assert _found(tmp_path / "flows") == ["a.yaml"]
    assert _found(tmp_path) == []


def test_unknown_ignore_syntax_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dag_ignore_file_syntax"):
        discover_flows(tmp_path, ignore_syntax="fnmatch")


def test_wmill_yaml_includes_and_excludes(tmp_path: Path) -> None:
    write(tmp_path, "wmill.yaml", "includes:\n  - f/**\nexcludes:\n  - f/old/**\n  - '**/*_test.flow.yaml'\n")
    _flows(
        tmp_path,
        "f/a/x.flow/flow.yaml",
        "f/old/y.flow/flow.yaml",
        "f/a/z_test.flow.yaml",
        "u/ada/w.flow/flow.yaml",  # not under an include
        "flow.json",
    )
    assert _found(tmp_path) == ["f/a/x.flow/flow.yaml"]


def test_wmill_yaml_extra_includes_and_nested_projects(tmp_path: Path) -> None:
    write(tmp_path, "wmill.yaml", "includes: ['**']\nextraIncludes: ['f/team/**', 'prod/**']\n")
    write(tmp_path, "prod/wmill.yaml", "excludes: ['f/skip/**']\n")  # its own project: its own rules
    _flows(
        tmp_path, "f/team/a.flow.yaml", "f/other/b.flow.yaml", "prod/f/skip/c.flow.yaml", "prod/f/d.flow.yaml"
    )
    assert _found(tmp_path) == ["f/team/a.flow.yaml", "prod/f/d.flow.yaml"]


def test_wmill_yaml_above_the_root_applies(tmp_path: Path) -> None:
    """Like the Windmill CLI, the nearest wmill.yaml above applies, relative to its own folder."""
    write(tmp_path, "wmill.yaml", "includes: ['f/keep/**']\n")
    _flows(tmp_path, "f/keep/a.flow.yaml", "f/drop/b.flow.yaml")
    assert _found(tmp_path / "f") == ["keep/a.flow.yaml"]


def test_a_broken_wmill_yaml_does_not_hide_flows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, "wmill.yaml", "includes: [unclosed\n")
    _flows(tmp_path, "f/a.flow.yaml")
    assert _found(tmp_path) == ["f/a.flow.yaml"]
    assert "includes/excludes are not used" in caplog.text


def test_schedules_are_searched_where_flows_are(tmp_path: Path) -> None:
    write(tmp_path, ".airflowignore", "old/\n")
    for name in (
        "f/a.schedule.yaml",
        "old/b.schedule.yaml",
        "node_modules/c.schedule.yaml",
        "f/x.flow/d.schedule.yaml",
    ):
        write(tmp_path, name, "schedule: '0 * * * *'\n")
    write(tmp_path, "f/x.flow/flow.yaml", FLOW)  # a flow folder is not entered
    assert [p.relative_to(tmp_path).as_posix() for p in find_schedule_files(tmp_path)] == [
        "f/a.schedule.yaml"
    ]
    assert find_schedule_files(tmp_path / "f", recursive=False) == [tmp_path / "f/a.schedule.yaml"]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("f/**", "f/a/b.flow/flow.yaml", True),
        ("f/**", "u/a.yaml", False),
        ("f/**", "f/.hidden/a.yaml", False),  # no dot files without a '.' in the pattern
        ("**", "a/b/c.yaml", True),
        ("*.yaml", "a.yaml", True),
        ("*.yaml", "f/a.yaml", False),  # '*' stops at '/'
        ("**/*.yaml", "a.yaml", True),
        ("**/*.yaml", "f/g/a.yaml", True),
        ("f/*/x.flow/**", "f/team/x.flow/flow.yaml", True),
        ("f/{a,b}/**", "f/b/x.yaml", True),
        ("f/{a,b}/**", "f/c/x.yaml", False),
        ("f/?.yaml", "f/a.yaml", True),
        ("f/[ab].yaml", "f/b.yaml", True),
        ("f/[!ab].yaml", "f/b.yaml", False),
        ("./f/**", "f/a.yaml", True),
        ("!f/**", "u/a.yaml", True),
        ("!f/**", "f/a.yaml", False),
    ],
)
def test_minimatch_globs(pattern: str, path: str, matches: bool) -> None:
    assert bool(_minimatch(pattern).fullmatch(path)) is matches
