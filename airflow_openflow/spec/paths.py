"""Workspace paths of flow documents, from their location alone (no file is read)."""

from __future__ import annotations

from pathlib import Path

FLOW_FOLDER_SUFFIXES = (".flow", "__flow")
FLOW_FILE_NAMES = ("flow.yaml", "flow.yml", "flow.json")
DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")
#: Windmill schedule files: ``<path>.schedule.yaml`` (spec/schedules.py).
SCHEDULE_SUFFIXES = (".schedule.yaml", ".schedule.yml", ".schedule.json")


def flow_folder_of(path: Path) -> Path | None:
    """The git-sync flow folder (``x.flow/``, ``x__flow/``) a path is or sits in, else None."""
    if path.name.endswith(FLOW_FOLDER_SUFFIXES) and path.suffix.lower() not in DOCUMENT_SUFFIXES:
        return path
    if path.name in FLOW_FILE_NAMES and path.parent.name.endswith(FLOW_FOLDER_SUFFIXES):
        return path.parent
    return None


def workspace_path_for(path: str | Path, root: str | Path | None = None) -> str:
    """``<root>/f/examples/etl.flow/flow.yaml`` -> ``f/examples/etl``; ``<root>/team/a.yaml`` ->
    ``team/a``; ``a.flow.json`` -> ``a``. Without a root, the name alone is used."""
    path = Path(path)
    folder = flow_folder_of(path)
    target = folder if folder is not None else path
    base = Path(root) if root is not None else target.parent
    try:
        relative = target.resolve().relative_to(Path(base).resolve())
    except ValueError:
        relative = Path(target.name)
    text = relative.as_posix()
    if folder is None:
        for suffix in DOCUMENT_SUFFIXES:
            if text.lower().endswith(suffix):
                text = text[: -len(suffix)]
                break
    for suffix in FLOW_FOLDER_SUFFIXES:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    return text
