"""Whether a plain ``.json``/``.yaml`` file (not named as a git-sync flow) is an OpenFlow document.

The rule (docs/getting-started.md, "Which files become flows"): the file is a flow document, and
so becomes a DAG (a placeholder when broken), when its top level is a mapping and

- its ``value`` is a mapping with ``modules`` (every flow has it, an empty flow ``modules: []``), or
- it has ``modules`` at the top level next to ``summary`` or ``schema`` (a flow written without its
  ``value:`` wrapper: loud, so that the mistake is shown), or
- it does not parse at all but its text has both a ``value:`` and a ``modules:`` key.

Anything else (Kubernetes manifests, OpenAPI specs, test fixtures, a list, an OData reply whose
``value`` is a list...) is not a flow and is skipped. Cheap and safe, as it runs at every DAG-file
parse on every such file: a file over the 8 MiB limit is not read (``spec/workspace.py``), a file
without the bytes ``modules`` is not parsed, JSON that does not start with ``{`` is not parsed, and
YAML is read as libyaml parser events (no composing, so neither deep nesting nor aliases cost
anything) until the answer is known; only a JSON object is parsed whole (the C parser).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from airflow_openflow.spec.bounds import MAX_DEPTH
from airflow_openflow.spec.workspace import (
    MAX_FILE_BYTES,
    UnsafePathError,
    is_inside_workspace,
    read_regular_file,
)
from airflow_openflow.spec.yaml_io import FlowYamlLoader

_KEY_VALUE = re.compile(r"""(?:^|[\s{,])["']?value["']?\s*:""", re.MULTILINE)
_KEY_MODULES = re.compile(r"""(?:^|[\s{,])["']?modules["']?\s*:""", re.MULTILINE)


def not_a_flow_reason(path: str | os.PathLike[str], workspace: Path | None = None) -> str | None:
    """None when the file at ``path`` is (meant as) a flow document, else why it is not one."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size > MAX_FILE_BYTES:
        return f"over the {MAX_FILE_BYTES // (1024 * 1024)} MiB limit of a flow document: not read"
    if workspace is not None and not is_inside_workspace(path, workspace):
        return None  # a link out of the folder: not read here, the loader says why it refuses it
    try:
        raw = read_regular_file(path)
    except (OSError, UnsafePathError) as exc:
        return f"cannot be read ({exc})"
    if b"modules" not in raw:
        return "no 'modules' in it"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    shape = _json_shape(text) if Path(path).suffix.lower() == ".json" else _yaml_shape(text)
    if shape is None:  # does not parse
        if _KEY_VALUE.search(text) and _KEY_MODULES.search(text):
            return None
        return "does not parse and has no 'value:' and 'modules:' keys"
    return None if shape else "not an OpenFlow document (no 'value' mapping with 'modules')"


def _is_flow(top_keys: set[str], value_keys: set[str] | None) -> bool:
    if value_keys is not None and "modules" in value_keys:
        return True
    return "modules" in top_keys and bool(top_keys & {"summary", "schema"})


def _json_shape(text: str) -> bool | None:
    if not text.lstrip().startswith("{"):
        return False  # a list or a scalar: never a flow, not parsed
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return False
    value = data.get("value")
    return _is_flow({str(k) for k in data}, {str(k) for k in value} if isinstance(value, dict) else None)


def _yaml_shape(text: str) -> bool | None:
    """The rule on the first YAML document, from parser events; None when it does not parse or
    nests deeper than a flow may (the loader says so when the text has the keys of a flow)."""
    try:
        return _scan_events(yaml.parse(text, Loader=FlowYamlLoader))
    except yaml.YAMLError:
        return None


def _scan_events(events: Iterator[yaml.Event]) -> bool | None:
    top_keys: set[str] = set()
    value_keys: set[str] | None = None
    # One frame per open collection: [is a mapping, next node is a key, role]; role "top" for the
    # document's mapping, "value" for the mapping under its ``value`` key.
    frames: list[list[object]] = []
    pending_role = "top"
    for event in events:
        if isinstance(event, (yaml.StreamStartEvent, yaml.DocumentStartEvent)):
            continue
        if isinstance(event, (yaml.DocumentEndEvent, yaml.StreamEndEvent)):
            break
        if isinstance(event, yaml.CollectionEndEvent):
            frame = frames.pop()
            if frame[2] == "top":
                break
            if frame[2] == "value" and value_keys is not None and "modules" in value_keys:
                return True
            continue
        if not frames:  # the document's root node
            if not isinstance(event, yaml.MappingStartEvent):
                return False
            frames.append([True, True, "top"])
            continue
        frame = frames[-1]
        is_key = bool(frame[0]) and bool(frame[1])
        if frame[0]:
            frame[1] = not frame[1]
        if is_key:
            key = event.value if isinstance(event, yaml.ScalarEvent) else None
            if frame[2] == "top" and key is not None:
                top_keys.add(key)
                pending_role = "value" if key == "value" else ""
            elif frame[2] == "value" and key is not None:
                value_keys = value_keys if value_keys is not None else set()
                value_keys.add(key)
                if key == "modules":
                    return True
            else:
                pending_role = ""
        role = pending_role if frame[2] == "top" and not is_key else ""
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(frames) >= MAX_DEPTH:  # too deep for a flow, and libyaml slows down with depth
                return None
            mapping = isinstance(event, yaml.MappingStartEvent)
            if role == "value" and mapping:
                value_keys = set()
            frames.append([mapping, mapping, role if mapping else ""])
    return _is_flow(top_keys, value_keys)
