"""JSON paths (``value.modules[2].value.input_transforms.x``) and their line numbers in a source text.

Lines are only computed when there is something to report: the happy path parses with ``json.loads`` /
libyaml and never builds a node tree. To find lines we re-compose the text with ``yaml.compose``
(JSON is YAML, so one code path serves both formats) and walk the node tree along the path.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.yaml_io import FlowYamlLoader

Segment = str | int

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# One path segment: ``.name``, ``[3]`` or ``["any key"]`` (a JSON string).
_SEGMENT = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def join_path(parent: str, key: Segment) -> str:
    """Append a key or index to a path; keys that are not identifiers are written ``["key"]``."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _IDENT.match(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def split_path(path: str) -> list[Segment]:
    """Inverse of :func:`join_path`. Stops at the first part it cannot read."""
    out: list[Segment] = []
    pos = 0
    while pos < len(path):
        match = _SEGMENT.match(path, pos)
        if match is None or match.end() == pos:
            break
        name, index, quoted = match.groups()
        if name is not None:
            out.append(name)
        elif index is not None:
            out.append(int(index))
        else:
            out.append(json.loads(quoted))
        pos = match.end()
    return out


def compose(text: str) -> yaml.Node | None:
    """The node tree of a JSON or YAML text, or None when it cannot be built."""
    try:
        return yaml.compose(text, Loader=FlowYamlLoader)
    except Exception:  # a best-effort lookup must never hide the real problem
        return None


def line_of(root: yaml.Node | None, path: str) -> int | None:
    """1-based line of the deepest node on ``path`` (the key's line for mapping entries)."""
    if root is None:
        return None
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for segment in split_path(path):
        if isinstance(node, yaml.MappingNode) and isinstance(segment, str):
            found = None
            for key_node, value_node in node.value:  # last duplicate wins, as when loading
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == segment:
                    found = (key_node, value_node)
            if found is None:
                break
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(segment, int):
            if segment >= len(node.value):
                break
            node = node.value[segment]
            line = node.start_mark.line + 1
        else:
            break
    return line


def with_lines(problems: Iterable[Problem], text: str | None) -> list[Problem]:
    """Fill ``line`` of problems that have none, from their json_path in ``text``."""
    problems = list(problems)
    missing = [p for p in problems if p.line is None]
    if text is None or not missing:
        return problems
    root = compose(text)
    if root is None:
        return problems
    return [
        p if p.line is not None else dataclasses.replace(p, line=line_of(root, p.json_path)) for p in problems
    ]


def with_lines_from_file(problems: Iterable[Problem], file: str | None) -> list[Problem]:
    """Same as :func:`with_lines`, reading the text from ``file`` (no lines if it cannot be read)."""
    problems = list(problems)
    if file is None or all(p.line is not None for p in problems):
        return problems
    try:
        text = Path(file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return problems
    return with_lines(problems, text)
