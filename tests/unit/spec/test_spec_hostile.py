"""Hostile and broken documents: files stay inside the workspace, nothing crashes or hangs the
loader, duplicate keys and clashing dag ids are reported instead of dropped."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from airflow_openflow.spec import check_supported, discover_flows, load_flow
from airflow_openflow.spec.errors import FlowDocumentError, Problem
from airflow_openflow.spec.loader import load_flow_result
from airflow_openflow.spec.workspace import workspace_root_for

SECRET = "OPENFLOW_TEST_SECRET_0451"


def _errors(source: Path, root: Path | None = None) -> list[Problem]:
    result = load_flow_result(source, root=root)
    if result.flow is not None and not result.errors:
        return [p for p in check_supported(result.flow) if p.severity == "error"]
    return result.errors


def _inline_flow(folder: Path, ref: str, *, key: str = "content") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "flow.yaml").write_text(
        "summary: hostile\nvalue:\n  modules:\n    - id: a\n      value:\n        type: rawscript\n"
        f"        language: python3\n        {key}: '!inline {ref}'\n"
        + ("        content: 'def main(): pass'\n" if key == "lock" else "")
        + "        input_transforms: {}\n"
    )
    return folder


@pytest.fixture()
def secret_outside(tmp_path: Path) -> Path:
    """A file outside the workspace ``tmp_path/repo`` holding a secret."""
    secret = tmp_path / "outside" / "secret.py"
    secret.parent.mkdir()
    secret.write_text(f"KEY = '{SECRET}'\n")
    return secret


def _assert_refused(problems: list[Problem], json_path: str) -> None:
    assert problems, "the document was accepted"
    text = "\n".join(p.format() for p in problems)
    assert SECRET not in text
    assert any(p.json_path.startswith(json_path) and p.line is not None for p in problems), text


# -- item 1: every path a document names stays inside its workspace --------------------------------


@pytest.mark.parametrize(
    "ref",
    ["/proc/self/environ", "../../outside/secret.py", "{secret}", "../../../../../../../../etc/passwd"],
)
def test_inline_references_outside_the_workspace_are_refused(
    tmp_path: Path, secret_outside: Path, ref: str
) -> None:
    folder = _inline_flow(tmp_path / "repo" / "x.flow", ref.format(secret=secret_outside))
    problems = _errors(folder / "flow.yaml", root=tmp_path / "repo")
    _assert_refused(problems, "value.modules[0].value.content")
    assert "outside the workspace" in problems[0].message or "absolute path" in problems[0].message


def test_inline_lock_outside_the_workspace_is_an_error_not_an_empty_lock(tmp_path: Path) -> None:
    folder = _inline_flow(tmp_path / "repo" / "x.flow", "/etc/passwd", key="lock")
    _assert_refused(_errors(folder / "flow.yaml", root=tmp_path / "repo"), "value.modules[0].value.lock")


def test_devices_fifos_and_oversized_files_are_never_read(tmp_path: Path) -> None:
    folder = tmp_path / "repo" / "x.flow"
    folder.mkdir(parents=True)
    os.symlink("/dev/zero", folder / "zero.py")
    os.mkfifo(folder / "pipe.py")
    (folder / "big.py").write_bytes(b"#" * (9 * 1024 * 1024))
    for name, why in [
        ("zero.py", "outside the workspace"),
        ("pipe.py", "not a regular file"),
        ("big.py", "limit"),
    ]:
        _inline_flow(folder, name)
        problems = _run_with_deadline(lambda: _errors(folder / "flow.yaml", root=tmp_path / "repo"))
        assert problems and why in problems[0].message, (name, problems)


def test_a_symlink_inside_the_workspace_that_leaves_it_is_refused(
    tmp_path: Path, secret_outside: Path
) -> None:
    folder = tmp_path / "repo" / "x.flow"
    folder.mkdir(parents=True)
    os.symlink(secret_outside, folder / "code.py")
    _inline_flow(folder, "code.py")
    _assert_refused(_errors(folder / "flow.yaml", root=tmp_path / "repo"), "value.modules[0].value.content")


def test_inline_files_inside_the_workspace_still_load(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "common").mkdir(parents=True)
    (repo / "common" / "lib.py").write_text("def main():\n    return 1\n")
    folder = _inline_flow(repo / "x.flow", "../common/lib.py")
    flow = load_flow(folder, root=repo).flow
    assert "return 1" in flow.value.modules[0].value.content  # type: ignore[union-attr]


def _script_flow(folder: Path, kind: str, path: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "flow.yaml").write_text(
        f"summary: hostile\nvalue:\n  modules:\n    - id: a\n      value:\n        type: {kind}\n"
        f"        path: '{path}'\n        input_transforms: {{}}\n"
    )
    return folder


@pytest.mark.parametrize("kind", ["script", "flow"])
@pytest.mark.parametrize("path", ["../outside/secret", "{abs}", "f/../../outside/secret", "", "/", "."])
def test_scripts_and_sub_flows_by_path_stay_in_the_workspace(
    tmp_path: Path, secret_outside: Path, kind: str, path: str
) -> None:
    (secret_outside.parent / "secret.yaml").write_text(f"summary: {SECRET}\nvalue:\n  modules: []\n")
    target = path.format(abs=str(secret_outside.with_suffix("")))
    folder = _script_flow(tmp_path / "repo" / "f" / "app" / "x.flow", kind, target)
    for root in (tmp_path / "repo", None):  # loaded from a folder, and on its own
        problems = _errors(folder / "flow.yaml", root=root)
        _assert_refused(problems, "value.modules[0].value.path")


def test_a_workspace_script_linked_to_a_file_outside_is_refused(tmp_path: Path, secret_outside: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "f" / "lib").mkdir(parents=True)
    os.symlink(secret_outside, repo / "f" / "lib" / "leak.py")
    folder = _script_flow(repo / "f" / "app" / "x.flow", "script", "f/lib/leak")
    _assert_refused(_errors(folder / "flow.yaml", root=repo), "value.modules[0].value.path")


def test_a_flow_file_linked_from_outside_the_folder_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(f"summary: {SECRET}\nvalue:\n  modules: []\n")
    (tmp_path / "repo").mkdir()
    os.symlink(outside, tmp_path / "repo" / "linked.yaml")
    [problem] = load_flow_result(tmp_path / "repo" / "linked.yaml", root=tmp_path / "repo").errors
    assert "outside the folder flows are loaded from" in problem.message and SECRET not in problem.format()


def test_the_workspace_of_a_flow_loaded_on_its_own_is_its_git_sync_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    flow_file = repo / "f" / "team" / "etl.flow" / "flow.yaml"
    assert workspace_root_for(flow_file, None) == repo.resolve()
    assert workspace_root_for(tmp_path / "u" / "x.flow" / "flow.yaml", None) == (tmp_path / "u").resolve()
    (tmp_path / "wmill.yaml").write_text("defaultTs: bun\n")
    assert workspace_root_for(flow_file, None) == tmp_path.resolve()
    assert workspace_root_for(flow_file, repo / "f") == (repo / "f").resolve()


def test_no_hostile_content_reaches_the_dag_docs(tmp_path: Path, secret_outside: Path) -> None:
    """What a document reads ends up in the DAG's docs: the DAG processor's view of a folder of
    hostile documents shows errors, never the files they name."""
    from airflow_openflow import load_openflow_dags

    repo = tmp_path / "repo"
    _inline_flow(repo / "a.flow", "/proc/self/environ")
    _inline_flow(repo / "b.flow", str(secret_outside))
    _script_flow(repo / "c.flow", "script", str(secret_outside.with_suffix("")))
    _script_flow(repo / "d.flow", "flow", "../outside/secret")
    (secret_outside.parent / "secret.yaml").write_text(f"summary: {SECRET}\nvalue:\n  modules: []\n")
    os.environ[SECRET] = SECRET  # so /proc/self/environ holds it too
    try:
        dags = load_openflow_dags(repo)
    finally:
        del os.environ[SECRET]
    assert sorted(dags) == ["a", "b", "c", "d"]
    for dag in dags.values():
        assert "openflow-invalid" in dag.tags
        texts = [dag.doc_md or "", dag.description or "", *(t.doc_md or "" for t in dag.tasks)]
        assert not any(SECRET in text for text in texts)


# -- items 2 and 3: no crash, bounded cost -----------------------------------------------------------


def _run_with_deadline(call, seconds: float = 20.0):  # type: ignore[no-untyped-def]
    """Run ``call`` in a thread; fail (instead of hanging the suite) if it does not return."""
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return box[0]


def test_deep_nesting_is_an_error_in_a_process_that_survives(tmp_path: Path) -> None:
    """50 000 nested YAML lists crashed the process (libyaml's composer recursing in C); the same
    in JSON raised RecursionError. Run the loader in a child process, so a crash fails the test
    rather than the suite."""
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "lists.yaml").write_text(
        "summary: deep\nvalue:\n  modules: " + "[" * 50_000 + "]" * 50_000 + "\n"
    )
    (folder / "blocks.yaml").write_text(
        "summary: deep\nvalue:\n  modules:\n" + "".join(" " * i + "-\n" for i in range(2, 1500))
    )
    (folder / "lists.json").write_text(
        '{"summary": "deep", "value": {"modules": ' + "[" * 50_000 + "]" * 50_000 + "}}"
    )
    (folder / "fine.yaml").write_text("summary: fine\nvalue:\n  modules: []\n")
    code = (
        "import sys\nfrom airflow_openflow.spec.loader import load_flow_result\n"
        "for name in ['lists.yaml', 'blocks.yaml', 'lists.json', 'fine.yaml']:\n"
        f"    r = load_flow_result({str(folder)!r} + '/' + name)\n"
        "    print(name, r.flow is not None, [p.format() for p in r.errors])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["fine.yaml"].startswith("True")
    for name in ("lists.yaml", "blocks.yaml", "lists.json"):
        assert lines[name].startswith("False") and "deeper than 128 levels" in lines[name], lines[name]


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """7 nested anchors of 10 aliases each: 10^7 values once expanded (33 s and 2 GB before)."""
    lines = ["summary: bomb", "value:", "  modules: []", "schema:", "  type: object", "  properties:"]
    lines.append('    a0: {type: array, default: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]}')
    for i in range(1, 8):
        lines.append(f"    a{i}: {{type: array, default: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]}}")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    result = _run_with_deadline(lambda: load_flow_result(tmp_path / "bomb.yaml"))
    assert result.flow is None and "expands to more than" in result.errors[0].message


def test_recursive_yaml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").write_text("summary: loop\nvalue:\n  modules: &m [*m]\n")
    [problem] = load_flow_result(tmp_path / "loop.yaml").errors
    assert "refers to itself" in problem.message


def test_moderate_aliases_still_load(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(
        "summary: ok\nvalue:\n  modules:\n    - id: a\n      value: &v {type: identity}\n"
        "    - id: b\n      value: *v\n"
    )
    assert [m.id for m in load_flow(tmp_path / "ok.yaml").flow.value.modules] == ["a", "b"]


def test_a_fifo_named_like_a_flow_is_skipped_and_never_blocks(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "x.yaml")
    (tmp_path / "y.yaml").write_text("summary: y\nvalue:\n  modules: []\n")
    assert _run_with_deadline(lambda: discover_flows(tmp_path)) == [tmp_path / "y.yaml"]
    result = _run_with_deadline(lambda: load_flow_result(tmp_path / "x.yaml"))
    assert "not a regular file" in result.errors[0].message


# -- item 6: nothing dropped silently --------------------------------------------------------------


def test_duplicate_yaml_keys_are_refused_with_both_lines(tmp_path: Path) -> None:
    (tmp_path / "dup.yaml").write_text(
        "summary: dup\nvalue:\n  modules:\n    - id: a\n      value: {type: identity}\n  modules: []\n"
    )
    with pytest.raises(FlowDocumentError) as caught:
        load_flow(tmp_path / "dup.yaml")
    [problem] = caught.value.problems
    assert (
        problem.line == 6 and "duplicate key 'modules' (first at line 3, again at line 6)" in problem.message
    )


def test_duplicate_json_keys_are_refused_with_both_lines(tmp_path: Path) -> None:
    (tmp_path / "dup.json").write_text(
        '{"summary": "dup",\n "value": {\n  "modules": [{"id": "a", "value": {"type": "identity"}},\n'
        '               {"id": "b", "value": {"type": "identity"}}],\n  "modules": []\n }\n}\n'
    )
    [problem] = load_flow_result(tmp_path / "dup.json").errors
    assert (
        problem.line == 5 and "duplicate key 'modules' (first at line 3, again at line 5)" in problem.message
    )


def test_documents_sharing_a_dag_id_all_show_up_as_the_clash(tmp_path: Path) -> None:
    from airflow_openflow import load_openflow_dags

    body = "summary: s\nvalue:\n  modules: []\n"
    for name in ("a.yaml", "a.json", "x/y.yaml", "x__y.json", "ok.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(
            body if name.endswith("yaml") else '{"summary": "s", "value": {"modules": []}}'
        )
    (tmp_path / "b.flow").mkdir()
    (tmp_path / "b.flow" / "flow.yaml").write_text(body)
    (tmp_path / "b__flow").mkdir()
    (tmp_path / "b__flow" / "flow.yaml").write_text(body)
    dags = load_openflow_dags(tmp_path)
    assert sorted(dags) == ["a", "b", "ok", "x__y"]
    assert "openflow-invalid" not in dags["ok"].tags
    for dag_id, files in [
        ("a", ["a.json", "a.yaml"]),
        ("b", ["b.flow", "b__flow"]),
        ("x__y", ["x__y.json", "y.yaml"]),
    ]:
        dag = dags[dag_id]
        assert "openflow-invalid" in dag.tags
        assert all(name in dag.doc_md for name in files), dag.doc_md


def test_a_symlink_to_a_file_inside_the_workspace_is_followed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "common").mkdir(parents=True)
    (repo / "common" / "lib.py").write_text("def main():\n    return 7\n")
    folder = repo / "x.flow"
    folder.mkdir()
    os.symlink(repo / "common" / "lib.py", folder / "code.py")
    _inline_flow(folder, "code.py")
    flow = load_flow(folder, root=repo).flow
    assert "return 7" in flow.value.modules[0].value.content  # type: ignore[union-attr]


def test_a_flow_folder_linked_from_outside_the_workspace_reads_nothing_there(
    tmp_path: Path, secret_outside: Path
) -> None:
    outside_flow = secret_outside.parent / "x.flow"
    outside_flow.mkdir()
    (outside_flow / "code.py").write_text(f"# {SECRET}\n")
    _inline_flow(outside_flow, "code.py")
    (tmp_path / "repo").mkdir()
    os.symlink(outside_flow, tmp_path / "repo" / "x.flow")
    problems = _errors(tmp_path / "repo" / "x.flow" / "flow.yaml", root=tmp_path / "repo")
    assert problems and "outside the folder flows are loaded from" in problems[0].message
    assert SECRET not in "\n".join(p.format() for p in problems)
