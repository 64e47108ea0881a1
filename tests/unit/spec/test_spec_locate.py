"""json_path <-> line mapping."""

from __future__ import annotations

import json

import pytest

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.locate import compose, join_path, line_of, split_path, with_lines


def test_join_and_split_round_trip() -> None:
    path = join_path(join_path(join_path(join_path("", "value"), "modules"), 2), "x-y")
    path = join_path(join_path(path, 'a"b'), "ok_1")
    assert path == 'value.modules[2]["x-y"]["a\\"b"].ok_1'
    assert split_path(path) == ["value", "modules", 2, "x-y", 'a"b', "ok_1"]
    assert split_path("") == []


YAML = """summary: x
value:
  modules:
    - id: a
      value:
        input_transforms:
          "x-y": {type: static}
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", 1),
        ("summary", 1),
        ("value.modules", 3),
        ("value.modules[0]", 4),
        ("value.modules[0].id", 4),
        ('value.modules[0].value.input_transforms["x-y"]', 7),
        ('value.modules[0].value.input_transforms["x-y"].type', 7),
        ("value.modules[0].value.missing", 5),  # deepest existing node
        ("value.modules[5]", 3),
    ],
)
def test_line_of_yaml(path: str, expected: int) -> None:
    assert line_of(compose(YAML), path) == expected


def test_line_of_json() -> None:
    text = json.dumps({"summary": "x", "value": {"modules": [{"id": "a"}, {"id": "b"}]}}, indent=2)
    lines = text.splitlines()
    found = line_of(compose(text), "value.modules[1].id")
    assert found is not None and lines[found - 1].strip() == '"id": "b"'


def test_with_lines_leaves_none_when_text_does_not_compose() -> None:
    problem = Problem("m", json_path="value")
    assert with_lines([problem], "a: [") == [problem]
    assert with_lines([problem], "a: 1\nvalue: 2\n")[0].line == 2
