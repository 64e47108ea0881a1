"""load_flow: sources (dict, JSON, YAML, git-sync folders), FlowSource, content hash, !inline files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from spec_helpers import FIXTURES, flow, line, step, write

from airflow_openflow.spec import FlowDocumentError, LoadedFlow, load_flow
from airflow_openflow.spec.model import BranchOne, ForloopFlow, Identity, RawScript

BASIC_YAML = """
    summary: Basic
    description: two steps
    value:
      modules:
        - id: a
          value:
            type: rawscript
            language: python3
            content: |
              def main(x):
                  return x + 1
            input_transforms:
              x: {type: javascript, expr: flow_input.x}
        - id: b
          value: {type: identity}
    schema:
      type: object
      properties: {x: {type: integer, default: 1}}
"""


def _rawscript(loaded: LoadedFlow, index: int = 0) -> RawScript:
    value = loaded.flow.value.modules[index].value
    assert isinstance(value, RawScript)
    return value


def test_yaml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "flows/basic.yaml", BASIC_YAML)
    loaded = load_flow(path, root=tmp_path)
    flow_ = loaded.flow
    assert loaded.warnings == []
    assert flow_.summary == "Basic" and flow_.description == "two steps"
    assert [m.id for m in flow_.value.modules] == ["a", "b"]
    script = _rawscript(loaded)
    assert script.language == "python3"
    assert script.content == "def main(x):\n    return x + 1\n"
    assert script.input_transforms["x"].kind == "javascript"
    assert script.input_transforms["x"].expr == "flow_input.x"
    assert script.input_transforms["x"].json_path == "value.modules[0].value.input_transforms.x"
    assert script.json_path == "value.modules[0].value"
    assert isinstance(flow_.value.modules[1].value, Identity)
    assert flow_.schema == {"type": "object", "properties": {"x": {"type": "integer", "default": 1}}}
    assert flow_.source.file == str(path)
    assert flow_.source.format == "yaml"
    assert flow_.source.workspace_path == "flows/basic"
    assert flow_.source.root == str(tmp_path)
    assert flow_.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_yml_and_str_path(tmp_path: Path) -> None:
    path = write(tmp_path, "basic.yml", BASIC_YAML)
    loaded = load_flow(str(path))
    assert loaded.flow.source.format == "yaml"
    assert loaded.flow.source.workspace_path == "basic"  # without a root: the name alone


def test_json_file_matches_yaml(tmp_path: Path) -> None:
    yaml_flow = load_flow(write(tmp_path, "a.yaml", BASIC_YAML)).flow
    document = {"summary": yaml_flow.summary, "description": "two steps", "value": {"modules": []}}
    document["value"] = {  # same document as JSON
        "modules": [
            {
                "id": "a",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": "def main(x):\n    return x + 1\n",
                    "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.x"}},
                },
            },
            {"id": "b", "value": {"type": "identity"}},
        ]
    }
    document["schema"] = {"type": "object", "properties": {"x": {"type": "integer", "default": 1}}}
    path = tmp_path / "team" / "a.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    json_flow = load_flow(path, root=tmp_path).flow
    assert json_flow.source.format == "json"
    assert json_flow.source.workspace_path == "team/a"
    assert json_flow.value == yaml_flow.value
    assert json_flow.schema == yaml_flow.schema
    assert json_flow.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert json_flow.content_hash != yaml_flow.content_hash


def test_fixture_files_load() -> None:
    json_flow = load_flow(FIXTURES / "basic.json").flow
    yaml_flow = load_flow(FIXTURES / "basic.yaml").flow
    assert json_flow.value == yaml_flow.value
    assert json_flow.summary == yaml_flow.summary == "Basic fixture"


def test_dict_source_and_hash() -> None:
    document = flow(step("a"), step("b"))
    loaded = load_flow(document)
    source = loaded.flow.source
    assert (source.file, source.format, source.workspace_path, source.root) == (None, "dict", None, None)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert loaded.flow.content_hash == hashlib.sha256(canonical.encode()).hexdigest()
    # Key order does not matter; content does.
    reordered = {"value": document["value"], "summary": "t"}
    assert load_flow(reordered).flow.content_hash == loaded.flow.content_hash
    assert load_flow(flow(step("a"), step("c"))).flow.content_hash != loaded.flow.content_hash


def test_dict_source_is_not_mutated() -> None:
    document = {"summary": "t", "input_transforms": None, "value": {"modules": [step("a")]}}
    document["value"]["modules"][0]["input_transforms"] = {"x": {"type": "static", "value": 1}}
    del document["input_transforms"]
    snapshot = json.dumps(document, sort_keys=True)
    load_flow(document)
    assert json.dumps(document, sort_keys=True) == snapshot


def test_single_file_export_with_path_key(tmp_path: Path) -> None:
    document = {"path": "f/other/name", "summary": "x", "value": {"modules": []}, "tag": None}
    path = tmp_path / "f" / "team" / "daily.flow.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    loaded = load_flow(path, root=tmp_path)
    assert loaded.flow.source.workspace_path == "f/team/daily"  # the file location decides
    assert loaded.flow.extra == {"path": "f/other/name", "tag": None}
    assert loaded.warnings == []  # deployment keys are not "unknown"


def test_yaml_12_scalars(tmp_path: Path) -> None:
    # Windmill's CLI reads YAML 1.2: these stay strings (PyYAML's 1.1 rules would change them).
    path = write(
        tmp_path,
        "scalars.yaml",
        """
        summary: 2024-01-01
        value:
          modules:
            - id: a
              value:
                type: rawscript
                language: bash
                content: echo hi
                input_transforms:
                  answer: {type: static, value: no}
                  switch: {type: static, value: on}
                  time: {type: static, value: 1:30}
                  octal: {type: static, value: 010}
                  flag: {type: static, value: true}
                  ratio: {type: static, value: 1e3}
        """,
    )
    transforms = _rawscript(load_flow(path)).input_transforms
    assert load_flow(path).flow.summary == "2024-01-01"
    values = {name: t.value for name, t in transforms.items()}
    assert values == {
        "answer": "no",
        "switch": "on",
        "time": "1:30",
        "octal": 10,
        "flag": True,
        "ratio": 1000.0,
    }


def test_legacy_import_header_is_stripped() -> None:
    header = "import { previous_result, flow_input, step, variable, resource, params } from 'windmill@1-1'\n"
    document = flow(
        step("a", input_transforms={"x": {"type": "javascript", "expr": header + "flow_input.x"}}),
        step("b", input_transforms={"y": {"type": "javascript", "expr": "import x\nresults.a"}}),
    )
    modules = load_flow(document).flow.value.modules
    assert modules[0].value.input_transforms["x"].expr == "flow_input.x"  # type: ignore[union-attr]
    assert modules[1].value.input_transforms["y"].expr == "import x\nresults.a"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# git-sync folders and !inline


FLOW_YAML = """
    summary: ETL
    value:
      modules:
        - id: a
          summary: Fetch data
          value:
            type: rawscript
            language: python3
            content: '!inline fetch_data.inline_script.py'
            lock: '!inline fetch_data.inline_script.lock'
            input_transforms: {}
        - id: b
          value:
            type: rawscript
            language: bash
            content: !inline b.inline_script.sh
            input_transforms: {}
    schema:
      type: object
      properties: {}
"""


def _sync_folder(root: Path, folder: str) -> Path:
    write(root, f"{folder}/flow.yaml", FLOW_YAML)
    write(root, f"{folder}/fetch_data.inline_script.py", "def main():\n    return [1, 2]\n")
    write(root, f"{folder}/fetch_data.inline_script.lock", "# py: 3.11\nrequests==2.32.3\n")
    write(root, f"{folder}/b.inline_script.sh", 'echo "hi"\n')
    return root / folder


@pytest.mark.parametrize("folder", ["f/examples/etl.flow", "f/examples/etl__flow"])
def test_git_sync_folder_with_inline_files(tmp_path: Path, folder: str) -> None:
    flow_dir = _sync_folder(tmp_path, folder)
    for source in (flow_dir, flow_dir / "flow.yaml", str(flow_dir)):
        loaded = load_flow(source, root=tmp_path)
        assert loaded.warnings == []
        first = _rawscript(loaded, 0)
        assert first.content == "def main():\n    return [1, 2]\n"
        assert first.lock == "# py: 3.11\nrequests==2.32.3\n"
        assert _rawscript(loaded, 1).content == 'echo "hi"\n'  # the unquoted YAML tag form
        assert loaded.flow.source.file == str(flow_dir / "flow.yaml")
        assert loaded.flow.source.workspace_path == "f/examples/etl"


def test_git_sync_json_folder(tmp_path: Path) -> None:
    document = flow(step("a", content="!inline a.inline_script.py", lock="!inline a.inline_script.lock"))
    write(tmp_path, "f/x/job__flow/flow.json", json.dumps(document))
    write(tmp_path, "f/x/job__flow/a.inline_script.py", "def main():\n    return 'json'\n")
    write(tmp_path, "f/x/job__flow/a.inline_script.lock", "")
    loaded = load_flow(tmp_path / "f/x/job__flow", root=tmp_path)
    assert loaded.flow.source.format == "json"
    assert loaded.flow.source.workspace_path == "f/x/job"
    assert _rawscript(loaded).content == "def main():\n    return 'json'\n"
    assert _rawscript(loaded).lock == ""


def test_content_hash_covers_inline_files(tmp_path: Path) -> None:
    flow_dir = _sync_folder(tmp_path, "etl.flow")
    before = load_flow(flow_dir).flow.content_hash
    assert before != hashlib.sha256((flow_dir / "flow.yaml").read_bytes()).hexdigest()
    assert load_flow(flow_dir).flow.content_hash == before  # deterministic
    (flow_dir / "b.inline_script.sh").write_text('echo "changed"\n', encoding="utf-8")
    assert load_flow(flow_dir).flow.content_hash != before


def test_inline_fallback_to_module_id(tmp_path: Path) -> None:
    # The CLI's second try: <module id>.<suffix of the referenced name>.
    write(tmp_path, "x.flow/flow.yaml", FLOW_YAML)
    write(tmp_path, "x.flow/a.inline_script.py", "def main():\n    return 'fallback'\n")
    write(tmp_path, "x.flow/fetch_data.inline_script.lock", "")
    write(tmp_path, "x.flow/b.inline_script.sh", "echo b\n")
    assert _rawscript(load_flow(tmp_path / "x.flow")).content == "def main():\n    return 'fallback'\n"


def test_inline_missing_file_is_an_error_with_line(tmp_path: Path) -> None:
    write(tmp_path, "x.flow/flow.yaml", FLOW_YAML)
    write(tmp_path, "x.flow/fetch_data.inline_script.lock", "")
    with pytest.raises(FlowDocumentError) as info:
        load_flow(tmp_path / "x.flow")
    flow_file = tmp_path / "x.flow/flow.yaml"
    problems = info.value.problems
    assert [p.json_path for p in problems] == [
        "value.modules[0].value.content",
        "value.modules[1].value.content",
    ]
    first, second = problems
    assert first.file == str(flow_file)
    assert first.line == line(flow_file, "fetch_data.inline_script.py")
    assert "fetch_data.inline_script.py or a.inline_script.py not found" in first.message
    assert second.line == line(flow_file, "b.inline_script.sh")
    assert "b.inline_script.sh not found" in second.message
    assert "'!inline'" in (first.hint or "")
    assert str(flow_file) in str(info.value) and ":9 at value.modules[0].value.content" in str(info.value)


def test_inline_missing_lock_is_a_warning(tmp_path: Path) -> None:
    flow_dir = _sync_folder(tmp_path, "x.flow")
    (flow_dir / "fetch_data.inline_script.lock").unlink()
    loaded = load_flow(flow_dir)
    assert _rawscript(loaded).lock == ""  # what the CLI does
    [warning] = loaded.warnings
    assert warning.json_path == "value.modules[0].value.lock"
    assert warning.line == line(flow_dir / "flow.yaml", "fetch_data.inline_script.lock")
    assert "fetch_data.inline_script.lock not found" in warning.message


def test_inline_in_dict_is_an_error() -> None:
    with pytest.raises(FlowDocumentError) as info:
        load_flow(flow(step("a", content="!inline a.py")))
    [problem] = info.value.problems
    assert problem.json_path == "value.modules[0].value.content"
    assert "'!inline a.py' cannot be resolved" in problem.message
    assert problem.file is None and problem.line is None


def test_inline_everywhere(tmp_path: Path) -> None:
    def script(step_id: str) -> dict[str, object]:
        return step(step_id, content=f"!inline {step_id}.py")

    document = flow(
        {
            "id": "loop",
            "value": {
                "type": "forloopflow",
                "iterator": {"type": "static", "value": [1]},
                "skip_failures": False,
                "modules": [script("in_loop")],
            },
        },
        {
            "id": "one",
            "value": {
                "type": "branchone",
                "branches": [{"expr": "true", "modules": [script("br")]}],
                "default": [script("dflt")],
            },
        },
        {"id": "all", "value": {"type": "branchall", "branches": [{"modules": [script("ball")]}]}},
        {
            "id": "w",
            "value": {"type": "whileloopflow", "skip_failures": False, "modules": [script("in_while")]},
        },
        {
            "id": "agent",
            "value": {
                "type": "aiagent",
                "input_transforms": {},
                "tools": [
                    {
                        "id": "tool",
                        "value": {
                            "tool_type": "flowmodule",
                            "type": "rawscript",
                            "language": "python3",
                            "content": "!inline tool.py",
                            "input_transforms": {},
                        },
                    }
                ],
            },
        },
        failure_module=script("failure"),
        preprocessor_module=script("preprocessor"),
    )
    names = ["in_loop", "br", "dflt", "ball", "in_while", "tool", "failure", "preprocessor"]
    for name in names:
        write(tmp_path, f"f.flow/{name}.py", f"# {name}\n")
    write(tmp_path, "f.flow/flow.json", json.dumps(document))
    value = load_flow(tmp_path / "f.flow").flow.value
    loop, one, all_, while_, agent = (m.value for m in value.modules)
    assert isinstance(loop, ForloopFlow) and isinstance(one, BranchOne)
    contents = [
        loop.modules[0].value.content,  # type: ignore[union-attr]
        one.branches[0].modules[0].value.content,  # type: ignore[union-attr]
        one.default[0].value.content,  # type: ignore[union-attr]
        all_.branches[0].modules[0].value.content,  # type: ignore[union-attr]
        while_.modules[0].value.content,  # type: ignore[union-attr]
        agent.tools[0]["value"]["content"],  # type: ignore[union-attr]
        value.failure_module.value.content,  # type: ignore[union-attr]
        value.preprocessor_module.value.content,  # type: ignore[union-attr]
    ]
    assert contents == [f"# {name}\n" for name in names]


# ---------------------------------------------------------------------------------------------
# Errors of the source itself


def test_missing_path_raises_document_error(tmp_path: Path) -> None:
    with pytest.raises(FlowDocumentError) as info:
        load_flow(tmp_path / "nope.yaml")
    [problem] = info.value.problems
    assert problem.message == "flow file not found"
    assert problem.file == str(tmp_path / "nope.yaml")


def test_unsupported_extension_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(FlowDocumentError, match=r"unsupported file type '\.txt'"):
        load_flow(write(tmp_path, "a.txt", "x"))
    (tmp_path / "empty.flow").mkdir()
    with pytest.raises(FlowDocumentError, match=r"no flow\.yaml or flow\.json in this folder"):
        load_flow(tmp_path / "empty.flow")


def test_wrong_source_type() -> None:
    with pytest.raises(TypeError, match="dict or a path"):
        load_flow(42)  # type: ignore[arg-type]


def test_all_errors_are_reported_not_just_the_first() -> None:
    document = flow({"value": {"type": "identity"}}, {"id": "b"}, {"id": "c", "value": {"type": "x"}})
    with pytest.raises(FlowDocumentError) as info:
        load_flow(document)
    assert [p.json_path for p in info.value.problems] == [
        "value.modules[0].id",
        "value.modules[1].value",
        "value.modules[2].value.type",
    ]
    assert info.value.file is None
    assert len(str(info.value).splitlines()) == 3
