"""The parse cache: a re-parse of an unchanged flow reuses its load result, and any change to what
the load read (the flow, an ``!inline`` script, a script by path, a sub-flow, ``wmill.yaml``, a
script file added, which languages can run here) loads it again. After every change the cached
result must equal a fresh load."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from airflow_openflow.dag_factory import prepare_document
from airflow_openflow.spec import FlowDocumentError
from airflow_openflow.spec import parse_cache as parse_cache_module
from airflow_openflow.spec.parse_cache import ParseCache

FLOW = """\
summary: main
value:
  modules:
    - id: a
      value:
        type: rawscript
        language: python3
        content: '!inline a.inline_script.py'
        input_transforms: {}
    - id: b
      value:
        type: script
        path: f/app/helper
        input_transforms: {}
    - id: c
      value:
        type: flow
        path: f/app/child
        input_transforms: {}
"""
CHILD = "summary: child\nvalue:\n  modules:\n    - id: x\n      value: {type: identity}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    files = {
        "wmill.yaml": "defaultTs: bun\n",
        "f/app/main.flow/flow.yaml": FLOW,
        "f/app/main.flow/a.inline_script.py": "def main():\n    return 1\n",
        "f/app/helper.py": "def main():\n    return 'py'\n",
        "f/app/child.flow/flow.yaml": CHILD,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def load(cache: ParseCache, repo: Path) -> object:
    """Through the cache; asserts the result is what a fresh load gives."""
    path = repo / "f/app/main.flow"
    cached = cache.load(path, repo, lambda: prepare_document(path, repo))
    assert cached == prepare_document(path, repo)
    return cached


def test_an_unchanged_flow_is_loaded_once(repo: Path, tmp_path: Path) -> None:
    cache = ParseCache(tmp_path / "cache")
    first = load(cache, repo)
    assert load(cache, repo) == first
    assert load(ParseCache(tmp_path / "cache"), repo) == first  # another process: same folder
    assert (cache.misses, cache.hits) == (1, 1)
    assert len(list((tmp_path / "cache").glob("*.pickle"))) == 1
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    "change",
    [
        "the flow file",
        "an inline script",
        "a script by path",
        "a sub-flow",
        "a script replaced by a file of another language",
        "wmill.yaml's defaultTs",
    ],
)
def test_a_change_to_anything_the_load_read_loads_the_flow_again(
    repo: Path, tmp_path: Path, change: str
) -> None:
    cache = ParseCache(tmp_path / "cache")
    before = load(cache, repo)
    if change == "the flow file":
        (repo / "f/app/main.flow/flow.yaml").write_text(FLOW.replace("summary: main", "summary: renamed"))
    elif change == "an inline script":
        (repo / "f/app/main.flow/a.inline_script.py").write_text("def main():\n    return 2\n")
    elif change == "a script by path":
        (repo / "f/app/helper.py").write_text("def main():\n    return 'edited'\n")
    elif change == "a sub-flow":
        (repo / "f/app/child.flow/flow.yaml").write_text(CHILD.replace("summary: child", "summary: kid"))
    elif change == "a script replaced by a file of another language":
        (repo / "f/app/helper.py").unlink()
        (repo / "f/app/helper.ts").write_text("export function main() { return 'ts' }\n")
    else:
        (repo / "f/app/helper.py").unlink()
        (repo / "f/app/helper.ts").write_text("export function main() { return 'ts' }\n")
        assert load(cache, repo) != before
        before = load(cache, repo)  # bun, cached
        (repo / "wmill.yaml").write_text("defaultTs: deno\n")
    after = load(cache, repo)
    assert after != before
    assert load(cache, repo) == after
    assert cache.hits >= 1


def test_a_broken_flow_is_not_kept_and_its_error_reported_each_time(repo: Path, tmp_path: Path) -> None:
    cache = ParseCache(tmp_path / "cache")
    load(cache, repo)
    (repo / "f/app/helper.py").unlink()  # the step's script is missing: an error
    path = repo / "f/app/main.flow"
    for _ in range(2):
        _, problems = cache.load(path, repo, lambda: prepare_document(path, repo))
        assert any(p.severity == "error" and "f/app/helper" in p.message for p in problems)
    (repo / "f/app/main.flow/flow.yaml").write_text("summary: [unclosed\n")
    for _ in range(2):
        with pytest.raises(FlowDocumentError):
            cache.load(path, repo, lambda: prepare_document(path, repo))
    assert cache.hits == 0


def test_a_damaged_entry_is_a_miss_and_is_rewritten(repo: Path, tmp_path: Path) -> None:
    cache = ParseCache(tmp_path / "cache")
    load(cache, repo)
    (entry,) = (tmp_path / "cache").glob("*.pickle")
    entry.write_bytes(b"\x80\x05not a pickle")
    load(cache, repo)
    assert cache.misses == 2
    load(cache, repo)
    assert cache.hits == 1


def test_a_folder_that_cannot_be_written_turns_the_cache_off_with_a_warning(
    repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    cache = ParseCache(blocked / "cache")
    with caplog.at_level(logging.WARNING):
        load(cache, repo)
        load(cache, repo)
    assert cache.hits == 0
    warnings = [r for r in caplog.records if "parse cache" in r.getMessage()]
    assert len(warnings) == 1 and str(blocked) in warnings[0].getMessage()


def test_an_entry_made_where_go_runs_is_not_used_where_it_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    (root / "f/app").mkdir(parents=True)
    flow = root / "f/app/go_step.yaml"
    flow.write_text(
        "summary: go\nvalue:\n  modules:\n    - id: a\n      value:\n        type: rawscript\n"
        "        language: go\n"
        "        content: 'package inner\\nfunc main() (int, error) { return 1, nil }\\n'\n"
        "        input_transforms: {}\n"
    )
    from airflow_openflow.spec import languages

    def with_go(present: bool) -> list[str]:
        monkeypatch.setattr(languages.shutil, "which", lambda tool: f"/usr/bin/{tool}" if present else None)
        parse_cache_module._environment.cache_clear()  # a new process, on another machine
        _, problems = ParseCache(tmp_path / "cache").load(flow, root, lambda: prepare_document(flow, root))
        return [p.message for p in problems if p.severity == "error"]

    try:
        assert with_go(True) == []
        assert any("'go' is not on the PATH" in message for message in with_go(False))
    finally:
        parse_cache_module._environment.cache_clear()


def test_the_cache_folder_defaults_to_the_users_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert parse_cache_module.default_cache_dir() == tmp_path / "xdg" / "airflow-openflow" / "parse"
    monkeypatch.delenv("XDG_CACHE_HOME")
    expected = Path(os.path.expanduser("~")) / ".cache" / "airflow-openflow" / "parse"
    assert parse_cache_module.default_cache_dir() == expected


def test_a_file_added_that_takes_precedence_loads_the_flow_again(repo: Path, tmp_path: Path) -> None:
    """No file the load read changed: a sub-flow's folder that Windmill's lookup prefers appeared."""
    import shutil

    shutil.rmtree(repo / "f/app/child.flow")
    (repo / "f/app/child.json").write_text('{"summary": "child as json", "value": {"modules": []}}')
    (repo / "f/app/child.flow").mkdir()  # a folder without a flow file yet: not the sub-flow
    (repo / "f/app/child.flow/notes.md").write_text("work in progress\n")
    cache = ParseCache(tmp_path / "cache")
    before = load(cache, repo)
    (repo / "f/app/child.flow/flow.yaml").write_text(CHILD)
    after = load(cache, repo)
    assert after != before and cache.hits == 0


def test_a_flow_loaded_on_its_own_gets_a_new_entry_when_its_workspace_changes(tmp_path: Path) -> None:
    """``run_flow`` of one file: its workspace is the git-sync root around it; a wmill.yaml added
    higher up makes another folder the workspace, where the script by path is another file."""
    outer = tmp_path / "outer"
    inner = outer / "team"
    for root, says in ((outer, "outer"), (inner, "inner")):
        (root / "f/app").mkdir(parents=True)
        (root / "f/app/helper.py").write_text(f"def main():\n    return '{says}'\n")
    flow = inner / "f/app/uses_helper.yaml"
    flow.write_text(
        "summary: s\nvalue:\n  modules:\n    - id: b\n      value:\n        type: script\n"
        "        path: f/app/helper\n        input_transforms: {}\n"
    )
    (outer / "wmill.yaml").write_text("defaultTs: bun\n")
    cache = ParseCache(tmp_path / "cache")
    first, _ = cache.load(flow, None, lambda: prepare_document(flow, None))
    assert "outer" in repr(first)
    (inner / "wmill.yaml").write_text("defaultTs: bun\n")  # the nearer root wins now
    second, _ = cache.load(flow, None, lambda: prepare_document(flow, None))
    assert "inner" in repr(second) and second == prepare_document(flow, None)[0]


def test_a_folder_others_can_write_to_is_not_trusted(
    repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Entries are pickles: whoever can write the folder could make the DAG processor run code."""
    folder = tmp_path / "cache"
    load(ParseCache(folder), repo)  # a valid entry is there
    folder.chmod(0o777)
    cache = ParseCache(folder)
    with caplog.at_level(logging.WARNING):
        load(cache, repo)
        load(cache, repo)
    assert cache.hits == 0 and cache.misses == 0  # neither read nor written
    warnings = [r.getMessage() for r in caplog.records if "parse cache" in r.getMessage()]
    assert len(warnings) == 1 and "writable by others (mode 777)" in warnings[0]


def test_entries_unused_for_a_week_are_deleted_once_a_day(repo: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    load(ParseCache(folder), repo)
    (used,) = folder.glob("*.pickle")
    week_and_a_day = time.time() - parse_cache_module.UNUSED_ENTRY_S - 86400
    gone = folder / ("0" * 64 + ".pickle")  # the entry of a flow that was renamed
    gone.write_bytes(b"")
    leftover = folder / ".abc.tmp"  # a writer that crashed
    leftover.write_bytes(b"")
    for path in (gone, leftover):
        os.utime(path, (week_and_a_day, week_and_a_day))
    two_days = time.time() - 2 * 86400
    os.utime(used, (two_days, two_days))  # last used two days ago: kept

    cache = ParseCache(folder)
    load(cache, repo)
    assert cache.hits == 1
    assert time.time() - used.stat().st_mtime < 60  # marked as used today
    assert not gone.exists() and not leftover.exists()

    again = folder / ("1" * 64 + ".pickle")
    again.write_bytes(b"")
    os.utime(again, (week_and_a_day, week_and_a_day))
    load(ParseCache(folder), repo)
    assert again.exists()  # pruned today already


def test_files_unchanged_for_a_while_are_checked_by_their_stat_and_an_edit_of_the_same_size_is_seen(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hour_ago = time.time() - 3600
    for path in [repo, *repo.rglob("*")]:
        os.utime(path, (hour_ago, hour_ago))
    cache = ParseCache(tmp_path / "cache")
    load(cache, repo)
    hashed: list[str] = []
    real = parse_cache_module.file_digest

    def counting(path: str) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(parse_cache_module, "file_digest", counting)
    load(cache, repo)
    assert cache.hits == 1 and hashed == []  # every file vouched for by its stat
    script = repo / "f/app/main.flow/a.inline_script.py"
    script.write_text(script.read_text().replace("1", "7"))  # same size, new mtime
    assert "return 7" in str(load(cache, repo))
    assert cache.misses == 2 and str(script) in hashed
