"""Workspace scripts referenced by path (``type: script``), found in the git-sync layout.

Windmill stores a script ``f/folder/name`` as ``f/folder/name.<ext>`` next to its metadata
(``name.script.yaml``, ``name.script.lock``). The language follows the extension (spec 9.2).
The file is looked up under the repository root: the folder flows were loaded from, else each
folder above the flow's own (so a flow run on its own still finds its repository's scripts).
"""

from __future__ import annotations

import dataclasses
import glob
from dataclasses import dataclass
from pathlib import Path

from airflow_openflow.spec.meaning_check import workspace_path_problem
from airflow_openflow.spec.model import FlowModule, OpenFlow, PathScript, RawScript, all_modules, map_steps

#: Extensions of the languages this release runs, and of those it recognises but cannot run.
RUNNABLE_SUFFIXES = {".py": "python3", ".sh": "bash"}
KNOWN_SUFFIXES = {
    ".ts": "TypeScript",
    ".go": "go",
    ".sql": "sql",
    ".ps1": "powershell",
    ".php": "php",
    ".rs": "rust",
    ".gql": "graphql",
}
_MAX_LEVELS = 12


@dataclass(frozen=True, slots=True)
class ScriptFile:
    path: Path
    language: str  # python3 / bash, or the name of a language this release cannot run
    runnable: bool

    def read(self) -> str:
        return self.path.read_text(encoding="utf-8")


def script_roots(flow: OpenFlow) -> list[Path]:
    roots: list[Path] = []
    if flow.source.root:
        roots.append(Path(flow.source.root))
    if flow.source.file:
        roots.extend(list(Path(flow.source.file).resolve().parents)[:_MAX_LEVELS])
    return list(dict.fromkeys(roots))


def find_script(workspace_path: str, flow: OpenFlow) -> ScriptFile | None:
    """The file of ``workspace_path`` (``f/folder/name``), or None when there is none (or the path
    cannot name one: the loader reports those)."""
    if workspace_path_problem(workspace_path) is not None:
        return None
    relative = workspace_path.strip("/")
    for root in script_roots(flow):
        base = root / relative
        if not base.parent.is_dir():
            continue
        for suffix, language in RUNNABLE_SUFFIXES.items():
            candidate = base.with_name(base.name + suffix)
            if candidate.is_file():
                return ScriptFile(candidate, language, runnable=True)
        for candidate in sorted(base.parent.glob(glob.escape(base.name) + ".*")):
            if candidate.suffix in KNOWN_SUFFIXES and ".script." not in candidate.name:
                return ScriptFile(candidate, KNOWN_SUFFIXES[candidate.suffix], runnable=False)
    return None


def with_scripts_inlined(flow: OpenFlow) -> OpenFlow:
    """The flow with every ``type: script`` step (nested ones too) replaced by a ``rawscript``
    holding the file's code, so every execution path runs one kind of script step. Scripts that
    cannot be found are left as they are (``check_supported`` reports them)."""

    def inline(module: FlowModule) -> FlowModule:
        value = module.value
        if not isinstance(value, PathScript):
            return module
        found = find_script(value.path, flow)
        if found is None or not found.runnable:
            return module
        code = RawScript(
            language=found.language,
            content=found.read(),
            input_transforms=value.input_transforms,
            path=value.path,
            is_trigger=value.is_trigger,
            json_path=value.json_path,
        )
        return dataclasses.replace(module, value=code, summary=module.summary or value.path)

    if not any(isinstance(m.value, PathScript) for m in all_modules(flow)):
        return flow
    return map_steps(flow, inline)
