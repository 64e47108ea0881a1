"""Find flow documents under a folder, by name only (this runs at every Airflow DAG-file parse)."""

from __future__ import annotations

import os
from pathlib import Path

from airflow_openflow.spec.loader import DOCUMENT_SUFFIXES
from airflow_openflow.spec.paths import FLOW_FILE_NAMES, FLOW_FOLDER_SUFFIXES
from airflow_openflow.spec.workspace import is_regular_file

# Windmill git-sync files that are not flows: ``<name>.<kind>.yaml`` / ``.json`` (spec 9.1).
_METADATA_KINDS = (
    ".schedule",
    ".script",
    ".resource",
    ".resource-type",
    ".variable",
    ".app",
    ".raw_app",
    ".user",
    ".group",
    "_trigger",  # ``.http_trigger``, ``.kafka_trigger``, ``.postgres_trigger``...
)
_METADATA_NAMES = frozenset(
    {
        "wmill.yaml",
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
# Folders that hold other Windmill objects (apps) next to flows: never flows.
_SKIP_FOLDER_SUFFIXES = (".app", "__app", ".raw_app", "__raw_app")


def _is_candidate_file(name: str) -> bool:
    if name.startswith(".") or name in _METADATA_NAMES:
        return False
    stem, suffix = os.path.splitext(name)
    if suffix.lower() not in DOCUMENT_SUFFIXES:
        return False
    return not stem.endswith(_METADATA_KINDS)


def discover_flows(folder: str | os.PathLike[str]) -> list[Path]:
    """Every flow document under ``folder``, sorted.

    Git-sync flow folders (``*.flow/`` or ``*__flow/`` holding ``flow.yaml`` or ``flow.json``) give
    their ``flow.yaml``/``flow.json``; other ``*.json``/``*.yaml``/``*.yml`` files count as standalone
    documents unless they are Windmill metadata, inside a hidden folder (``.wmill``, ``.git``...) or
    inside a flow folder. Files are never opened; anything that is not a regular file (a FIFO, a
device) is skipped.
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(os.path.abspath(folder)):
        keep: list[str] = []
        for name in dirnames:
            if name.startswith(".") or name.endswith(_SKIP_FOLDER_SUFFIXES):
                continue
            if name.endswith(FLOW_FOLDER_SUFFIXES):
                flow_file = _flow_file(os.path.join(dirpath, name))
                if flow_file is not None:
                    found.append(flow_file)
                    continue  # the folder's other files are inline scripts, not flows
            keep.append(name)
        dirnames[:] = keep  # prune in place: os.walk will not descend into the others
        found.extend(
            Path(dirpath, name)
            for name in filenames
            # Named like a document but a FIFO, socket or device: never opened (it could block).
            if _is_candidate_file(name) and is_regular_file(os.path.join(dirpath, name))
        )
    return sorted(found)


def _flow_file(folder: str) -> Path | None:
    for name in FLOW_FILE_NAMES:
        candidate = os.path.join(folder, name)
        if is_regular_file(candidate):
            return Path(candidate)
    return None
