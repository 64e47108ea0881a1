"""``airflow-openflow hub pull FOLDER``: vendor the Windmill Hub scripts the flows under FOLDER use.

For workers that cannot reach the hub: every ``hub/<id>/<app>/<name>`` script a flow under FOLDER
uses is downloaded once (runtime/hub.py, the client steps use) and written into the flows' workspace
in the git-sync layout, where the loader then finds it (spec/scripts.py) and inlines it like any
workspace script:

* ``hub/<id>/<app>/<name>.<ext>``: the code, the suffix saying its language (``.py``, ``.sh``,
  ``.bun.ts``, ``.deno.ts``...: spec/languages.py);
* ``hub/<id>/<app>/<name>.script.yaml``: its metadata as Windmill's git-sync writes it (summary,
  description naming where it came from, schema, ``lock`` pointing at the lock file if any);
* ``hub/<id>/<app>/<name>.script.lock``: its lock (dependencies), when the hub has one.

A script that already has a vendored copy is left alone, without asking the hub (a hub id names one
version of a script: the copy cannot be stale), so running it again changes nothing. Files are only
ever written under the workspace root (spec/workspace.py).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from airflow_openflow.runtime.hub import HubError, HubScript, fetch_hub_script
from airflow_openflow.spec.discover import discover_flows
from airflow_openflow.spec.errors import FlowDocumentError
from airflow_openflow.spec.hub import check_hub_path, is_hub_path
from airflow_openflow.spec.languages import BY_NAME
from airflow_openflow.spec.loader import load_flow
from airflow_openflow.spec.model import PathScript, all_modules
from airflow_openflow.spec.paths import flow_folder_of
from airflow_openflow.spec.scripts import find_script_in
from airflow_openflow.spec.workspace import UnsafePathError, is_inside_workspace, resolve_in_workspace


@dataclass
class PullReport:
    """What ``pull`` did: one line per hub script, problems separately."""

    fetched: list[str] = field(default_factory=list)
    vendored: list[str] = field(default_factory=list)  # already there
    failed: list[str] = field(default_factory=list)
    skipped_documents: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def hub_scripts_used(folder: Path, report: PullReport) -> dict[tuple[Path, str], list[Path]]:
    """``(workspace root, hub path) -> flow documents using it`` for the flows under ``folder`` (a
    folder of flows, or one flow file or git-sync flow folder). Documents that do not load are
    noted in ``report.skipped_documents``."""
    if folder.is_dir() and flow_folder_of(folder) is None:
        documents, root = discover_flows(folder), folder
    else:
        documents, root = [folder], None
    used: dict[tuple[Path, str], list[Path]] = {}
    for document in documents:
        try:
            flow = load_flow(document, root=root).flow
        except FlowDocumentError as exc:
            first = exc.problems[0].format() if exc.problems else str(exc)
            report.skipped_documents.append(f"{document}: not read ({first})")
            continue
        workspace = flow.source.workspace_root
        if workspace is None:  # only a dict document has none
            continue
        for module in all_modules(flow):
            value = module.value
            if isinstance(value, PathScript) and is_hub_path(value.path):
                used.setdefault((Path(workspace), value.path), []).append(document)
    return used


def pull(
    folder: Path,
    hub_url: str,
    *,
    fetch: Callable[[str, str], HubScript] = fetch_hub_script,
    say: Callable[[str], None] = print,
) -> PullReport:
    """Vendor every hub script the flows under ``folder`` use; ``say`` each result as it happens."""
    report = PullReport()
    for (root, path), _documents in sorted(hub_scripts_used(folder, report).items()):
        try:
            check_hub_path(path)
            existing = find_script_in(root, path)
            if existing is not None:
                shown = existing.path.relative_to(root)
                report.vendored.append(path)
                say(f"already vendored: {path} ({shown})")
                continue
            script = fetch(path, hub_url)
            written = write_vendored(root, script, hub_url)
        except (HubError, UnsafePathError, OSError) as exc:
            report.failed.append(f"{path}: {exc}")
            continue
        report.fetched.append(path)
        say(f"fetched {path} ({script.language}) from {hub_url} -> {written.relative_to(root)}")
    return report


def write_vendored(root: Path, script: HubScript, hub_url: str) -> Path:
    """Write ``script`` (its code, ``.script.yaml`` and lock) under ``root``; return the code file.
    Raises :class:`HubError` for a language with no git-sync suffix, :class:`UnsafePathError` for a
    target outside ``root``."""
    language = BY_NAME.get(script.language)
    if language is None:
        raise HubError(f"the hub gives its language as {script.language!r}, which is not a Windmill language")
    check_hub_path(script.path)
    code = resolve_in_workspace(root, script.path + language.suffixes[0])
    metadata = resolve_in_workspace(root, script.path + ".script.yaml")
    lock = resolve_in_workspace(root, script.path + ".script.lock")
    code.parent.mkdir(parents=True, exist_ok=True)
    if not is_inside_workspace(code.parent, root):  # a folder swapped for a symlink meanwhile
        raise UnsafePathError(f"{code.parent} is outside the workspace {root}")
    described = {
        "summary": script.summary or script.path,
        "description": f"Vendored from the Windmill Hub: {hub_url}/raw2/{script.path.removeprefix('hub/')}",
        "kind": "script",
        "schema": script.schema if isinstance(script.schema, dict) else None,
    }
    if script.lockfile and script.lockfile.strip():
        described["lock"] = f"!inline {script.path}.script.lock"
        _write(lock, script.lockfile)
    _write(metadata, yaml.safe_dump(described, sort_keys=False, allow_unicode=True))
    _write(code, script.content)  # last: the loader sees the script only once its metadata is there
    return code


def _write(target: Path, text: str) -> None:
    """Write in one piece: a temporary file in the same folder, renamed."""
    fd, temporary = tempfile.mkstemp(prefix=".hub-pull-", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # like the repository's other files, for workers running as another user
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
