"""Find the flow documents under a folder, such as a Windmill git-sync repository's root (this
runs at every Airflow DAG-file parse).

What becomes a flow (docs/getting-started.md, "Which files become flows"):

- the git-sync forms, by name alone: ``<name>.flow/`` or ``<name>__flow/`` holding ``flow.yaml``
  (or ``flow.json``), and ``<name>.flow.json`` / ``<name>.flow.yaml`` files. Broken ones become the
  loud placeholder DAG.
- any other ``.json``/``.yaml``/``.yml`` file that is an OpenFlow document (``spec/sniff.py``).

Skipped quietly (a debug log line): Windmill's other objects (``*.script.yaml``,
``*.resource.yaml``, ``*.resource_type.yaml``, ``*.variable.yaml``, ``*.schedule.yaml``,
``*_trigger.yaml``, apps, ``folder.meta.yaml``, ``wmill.yaml``, ``wmill-lock.yaml``...), hidden files
and folders (``.wmill/``, ``.git/``...), ``node_modules/``, whatever ``.airflowignore`` files or
``wmill.yaml``'s ``includes``/``excludes`` leave out (``spec/ignore.py``), and every file that is not
an OpenFlow document. Anything that is not a regular file (a FIFO, a device) is never opened.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from airflow_openflow.spec.ignore import (
    AIRFLOWIGNORE,
    WMILL_CONFIG,
    AirflowIgnore,
    Rule,
    WmillScope,
    nearest_wmill_scope,
    read_wmill_scope,
)
from airflow_openflow.spec.paths import (
    DOCUMENT_SUFFIXES,
    FLOW_FILE_NAMES,
    FLOW_FOLDER_SUFFIXES,
    SCHEDULE_SUFFIXES,
)
from airflow_openflow.spec.workspace import is_regular_file

log = logging.getLogger(__name__)

# Windmill git-sync files that are not flows: ``<name>.<kind>.yaml`` / ``.json`` (spec 9.1).
_METADATA_KINDS = (
    ".schedule",
    ".script",
    ".resource",
    ".resource-type",
    ".resource_type",
    ".variable",
    ".app",
    ".raw_app",
    ".user",
    ".group",
    ".fileset",
    "_trigger",  # ``.http_trigger``, ``.kafka_trigger``, ``.postgres_trigger``...
)
_METADATA_NAMES = frozenset(
    {
        WMILL_CONFIG,
        "wmill-lock.yaml",
        "folder.meta.yaml",
        "folder.meta.json",
        "settings.yaml",
        "settings.json",
        "encryption_key.yaml",
        # Tooling files that commonly sit in the same repository.
        "package.json",
        "package-lock.json",
        "tsconfig.json",
        "jsconfig.json",
        "deno.json",
        "bun.lock",
    }
)
# Folders never entered: other Windmill objects (apps) and package trees.
_SKIP_FOLDER_SUFFIXES = (".app", "__app", ".raw_app", "__raw_app")
_SKIP_FOLDERS = frozenset({"node_modules", "__pycache__"})
#: Names of git-sync flows stored as one file: ``<name>.flow.json`` / ``<name>.flow.yaml``.
_FLOW_FILE_SUFFIXES = tuple(f".flow{suffix}" for suffix in DOCUMENT_SUFFIXES)


@dataclass
class Discovery:
    """What :func:`scan_flows` found: the flow documents and the files skipped, with why; and the
    schedule files seen on the way, which ``spec.schedules.index_schedules`` takes instead of
    walking the folder again."""

    flows: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    schedule_files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class WorkspaceFile:
    path: Path
    in_flow_folder: bool  # the flow.yaml of a git-sync flow folder (whose folder is not entered)


def discover_flows(folder: str | os.PathLike[str], *, ignore_syntax: str | None = "glob") -> list[Path]:
    """Every flow document under ``folder``, sorted (see the module docstring)."""
    return scan_flows(folder, ignore_syntax=ignore_syntax).flows


def scan_flows(folder: str | os.PathLike[str], *, ignore_syntax: str | None = "glob") -> Discovery:
    from airflow_openflow.spec.sniff import not_a_flow_reason

    result = Discovery()
    root = Path(os.path.realpath(folder))

    def skip(path: Path, reason: str) -> None:
        log.debug("not a flow, skipped: %s (%s)", path, reason)
        result.skipped.append((path, reason))

    for entry in walk_workspace(folder, ignore_syntax=ignore_syntax, on_skip=skip):
        path = entry.path
        if entry.in_flow_folder:
            result.flows.append(path)
            continue
        name = path.name
        if name.lower().endswith(SCHEDULE_SUFFIXES):
            result.schedule_files.append(path)
        if name.startswith(".") or name in _METADATA_NAMES:
            skip(path, "Windmill or tooling metadata" if not name.startswith(".") else "hidden")
            continue
        stem, suffix = os.path.splitext(name)
        if suffix.lower() not in DOCUMENT_SUFFIXES:
            continue  # scripts, locks, docs: not even logged
        if stem.endswith(_METADATA_KINDS):
            skip(path, "a Windmill object that is not a flow")
            continue
        # Named like a document but a FIFO, socket or device: never opened (it could block).
        if not is_regular_file(path):
            skip(path, "not a regular file")
            continue
        if name.lower().endswith(_FLOW_FILE_SUFFIXES):
            result.flows.append(path)
            continue
        reason = not_a_flow_reason(path, root)
        if reason is None:
            result.flows.append(path)
        else:
            skip(path, reason)
    result.flows.sort()
    result.schedule_files.sort()
    return result


def walk_workspace(
    folder: str | os.PathLike[str],
    *,
    ignore_syntax: str | None = "glob",
    on_skip: object = None,
) -> Iterator[WorkspaceFile]:
    """The files under ``folder`` in scope for flows and schedules, by name only: hidden folders,
    ``node_modules``, app folders, and what ``.airflowignore`` or ``wmill.yaml`` leaves out are
    not given (nor entered); a git-sync flow folder gives its ``flow.yaml`` and is not entered.
    ``on_skip(path, reason)`` is told about what ``.airflowignore``/``wmill.yaml`` leave out."""
    top = os.path.abspath(folder)
    airflowignore = AirflowIgnore(top, ignore_syntax)
    rules_of: dict[str, tuple[Rule, ...]] = {}
    scope_of: dict[str, WmillScope | None] = {}
    top_scope = nearest_wmill_scope(top) if os.path.isdir(top) else None

    def tell(path: str, reason: str) -> None:
        if callable(on_skip):
            on_skip(Path(path), reason)

    def in_scope(path: str, is_dir: bool, rules: tuple[Rule, ...], scope: WmillScope | None) -> bool:
        if airflowignore.ignores(path, is_dir=is_dir, rules=rules):
            tell(path, f"left out by {AIRFLOWIGNORE}")
            return False
        if not is_dir and scope is not None and not scope.admits(path):
            tell(path, f"left out by the includes/excludes of {os.path.join(scope.folder, WMILL_CONFIG)}")
            return False
        return True

    for dirpath, dirnames, filenames in os.walk(top):
        rules = airflowignore.rules_for(dirpath, rules_of.pop(dirpath, ()), filenames)
        scope = scope_of.pop(dirpath, top_scope)
        if dirpath != top and WMILL_CONFIG in filenames:
            scope = read_wmill_scope(dirpath)
        keep: list[str] = []
        for name in sorted(dirnames):
            full = os.path.join(dirpath, name)
            if name.startswith(".") or name in _SKIP_FOLDERS or name.endswith(_SKIP_FOLDER_SUFFIXES):
                continue
            if not in_scope(full, True, rules, scope):
                continue
            if name.endswith(FLOW_FOLDER_SUFFIXES):
                flow_file = _flow_file(full)
                if flow_file is not None:
                    # the folder's other files are inline scripts, not flows
                    if in_scope(str(flow_file), False, rules, scope):
                        yield WorkspaceFile(flow_file, True)
                    continue
            keep.append(name)
            rules_of[full] = rules
            scope_of[full] = scope
        dirnames[:] = keep  # prune in place: os.walk will not descend into the others
        for name in sorted(filenames):
            if name == AIRFLOWIGNORE:
                continue
            full = os.path.join(dirpath, name)
            if in_scope(full, False, rules, scope):
                yield WorkspaceFile(Path(full), False)


def _flow_file(folder: str) -> Path | None:
    for name in FLOW_FILE_NAMES:
        candidate = os.path.join(folder, name)
        if is_regular_file(candidate):
            return Path(candidate)
    return None
