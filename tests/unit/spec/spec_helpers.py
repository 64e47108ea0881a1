"""Helpers shared by the spec tests (named so as not to clash with other test folders)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from airflow_openflow.spec import Problem, validate_flow

FIXTURES = Path(__file__).parent / "fixtures"


def write(folder: Path, name: str, text: str) -> Path:
    """Write a dedented text file (parents created) and return its path."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line(path: Path, needle: str) -> int:
    """1-based line of the only line of ``path`` containing ``needle``."""
    hits = [i for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in text]
    assert len(hits) == 1, f"{needle!r} found on lines {hits}"
    return hits[0]


def errors(source: Any, **kwargs: Any) -> list[Problem]:
    return [p for p in validate_flow(source, supported=False, **kwargs) if p.severity == "error"]


def warnings(source: Any, **kwargs: Any) -> list[Problem]:
    return [p for p in validate_flow(source, supported=False, **kwargs) if p.severity == "warning"]


def by_path(problems: list[Problem]) -> dict[str, Problem]:
    out: dict[str, Problem] = {}
    for problem in problems:
        assert problem.json_path not in out, f"two problems at {problem.json_path}"
        out[problem.json_path] = problem
    return out


def step(step_id: str, content: str = "def main():\n    return 1\n", **value: Any) -> dict[str, Any]:
    """A python3 rawscript step as a dict."""
    return {
        "id": step_id,
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": content,
            "input_transforms": {},
            **value,
        },
    }


def flow(*modules: dict[str, Any], **value: Any) -> dict[str, Any]:
    return {"summary": "t", "value": {"modules": list(modules), **value}}
