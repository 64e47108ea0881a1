"""Workspace scripts referenced by path (``type: script``), found in the git-sync layout.

Windmill stores a script ``f/folder/name`` as ``f/folder/name.<ext>`` next to its metadata
(``name.script.yaml``, ``name.script.lock``). The language follows the extension (spec 9.2).
The file is looked up under the flow's workspace root (spec/workspace.py), never outside it. A
plain ``name.ts`` is in the workspace's ``defaultTs`` language (``wmill.yaml`` at the workspace
root; ``bun`` when it says nothing).
A hub script ``hub/<id>/<app>/<name>`` is found the same way when it is vendored
(``hub/<id>/<app>/<name>.<ext>``, spec/hub.py); else it runs from the hub (runtime/hub.py).
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from airflow_openflow.spec.bounds import DocumentTooComplexError
from airflow_openflow.spec.hub import check_hub_path, is_hub_path
from airflow_openflow.spec.languages import BY_NAME, DEFAULT_TS, language_of_file
from airflow_openflow.spec.meaning_check import workspace_path_problem
from airflow_openflow.spec.model import FlowModule, OpenFlow, PathScript, RawScript, all_modules, map_steps
from airflow_openflow.spec.read_log import note_file, note_folder
from airflow_openflow.spec.workspace import (
    UnsafePathError,
    is_inside_workspace,
    is_regular_file,
    read_regular_file,
    resolve_in_workspace,
)
from airflow_openflow.spec.yaml_io import load_yaml

log = logging.getLogger(__name__)

#: ``wmill.yaml`` is a few lines of settings; a larger one is not read.
_WMILL_YAML_LIMIT = 1024 * 1024
#: The languages ``defaultTs`` may name (Windmill's CLI: ``bun`` or ``deno``).
_TS_DEFAULTS = ("bun", "deno")


@dataclass(frozen=True, slots=True)
class ScriptFile:
    path: Path
    language: str  # Windmill's language id (spec/languages.py)

    @property
    def runnable(self) -> bool:
        return BY_NAME[self.language].runs

    def read(self) -> str:
        return read_regular_file(self.path).decode("utf-8")


def workspace_of(flow: OpenFlow) -> Path | None:
    """The folder the flow's scripts and sub-flows are looked up in (None for a dict document)."""
    return Path(flow.source.workspace_root) if flow.source.workspace_root else None


def find_script(workspace_path: str, flow: OpenFlow) -> ScriptFile | None:
    """The file of ``workspace_path`` (``f/folder/name``, or ``hub/<id>/<app>/<name>`` for a
    vendored hub script) in the flow's workspace, or None when there is none. Raises
    :class:`UnsafePathError` for a path that leaves the workspace."""
    root = workspace_of(flow)
    check_workspace_path(workspace_path)
    if is_hub_path(workspace_path):
        check_hub_path(workspace_path)
    if root is None:
        return None
    return find_script_in(root, workspace_path)


def find_script_in(root: Path, workspace_path: str) -> ScriptFile | None:
    """:func:`find_script` in the workspace ``root`` (a real path)."""
    check_workspace_path(workspace_path)
    base = resolve_in_workspace(root, workspace_path)
    note_folder(base.parent)  # a script file added or removed there changes what is found
    if not base.parent.is_dir():
        return None
    found: list[ScriptFile] = []
    default_ts = workspace_default_ts(root)
    for candidate in sorted(base.parent.glob(glob.escape(base.name) + ".*")):
        language = language_of_file(candidate.name, default_ts=default_ts)
        if language is None or not _is_suffix_of(candidate.name[len(base.name) :], language):
            continue  # name.script.yaml, name.lock, other.name.py...
        if is_regular_file(candidate) and is_inside_workspace(candidate, root):
            found.append(ScriptFile(candidate, language))
    # One script has one file; should there be several, one this release runs is preferred.
    found.sort(key=lambda script: not script.runnable)
    return found[0] if found else None


def workspace_default_ts(root: Path) -> str:
    """The language of a plain ``.ts`` script in the workspace at ``root``: ``defaultTs`` of its
    ``wmill.yaml`` (read once per version of the file, bounded, safe YAML), else ``bun``."""
    marker = root / "wmill.yaml"
    note_folder(root)
    note_file(marker)  # read once per version below: the parse cache must still see a change
    try:
        info = marker.stat()
    except (OSError, ValueError):
        return DEFAULT_TS
    return _default_ts_of(str(marker), str(root), info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=64)
def _default_ts_of(marker: str, root: str, mtime_ns: int, size: int) -> str:
    try:
        if not is_inside_workspace(marker, Path(root)):
            raise UnsafePathError(f"{marker} leads outside the workspace {root}")
        data = load_yaml(read_regular_file(marker, limit=_WMILL_YAML_LIMIT).decode("utf-8"))
    except (OSError, ValueError, yaml.YAMLError, DocumentTooComplexError) as exc:
        log.warning("%s is not read (%s); a plain .ts script is %s", marker, exc, DEFAULT_TS)
        return DEFAULT_TS
    value = data.get("defaultTs") if isinstance(data, dict) else None
    if value is None:
        return DEFAULT_TS
    if value not in _TS_DEFAULTS:
        log.warning("%s: defaultTs %r is neither bun nor deno; .ts is %s", marker, value, DEFAULT_TS)
        return DEFAULT_TS
    return str(value)


def _is_suffix_of(suffix: str, language: str) -> bool:
    return suffix in BY_NAME[language].suffixes or suffix == ".ts"


def check_workspace_path(workspace_path: str) -> None:
    """Raise :class:`UnsafePathError` for a Windmill path (``f/folder/name``) that cannot name a
    file of the workspace (spec/meaning_check.py), before any file is looked at."""
    problem = workspace_path_problem(workspace_path)
    if problem is not None:
        raise UnsafePathError(f"{workspace_path!r} {problem}; Windmill paths look like f/folder/name")


def with_scripts_inlined(flow: OpenFlow) -> OpenFlow:
    """The flow with every ``type: script`` step (nested ones too) replaced by a ``rawscript``
    holding the file's code, so every execution path runs one kind of script step. Scripts that
    cannot be found are left as they are (``check_supported`` reports them), except hub scripts
    with no vendored copy: they stay ``type: script`` steps that fetch their code from the hub
    when they run (runtime/hub.py), with the workspace root they were looked for in."""
    root = workspace_of(flow)

    def inline(module: FlowModule) -> FlowModule:
        value = module.value
        if not isinstance(value, PathScript):
            return module
        try:
            found = find_script(value.path, flow)
            content = found.read() if found is not None and found.runnable else None
        except (UnsafePathError, OSError, UnicodeDecodeError):
            return module  # check_supported reports it
        if found is None and is_hub_path(value.path):
            where = None if root is None else str(root)
            return dataclasses.replace(module, value=dataclasses.replace(value, workspace_root=where))
        if found is None or content is None:
            return module
        code = RawScript(
            language=found.language,
            content=content,
            input_transforms=value.input_transforms,
            path=value.path,
            is_trigger=value.is_trigger,
            json_path=value.json_path,
        )
        return dataclasses.replace(module, value=code, summary=module.summary or value.path)

    if not any(isinstance(m.value, PathScript) for m in all_modules(flow)):
        return flow
    return map_steps(flow, inline)
