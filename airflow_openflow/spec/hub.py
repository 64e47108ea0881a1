"""Windmill Hub scripts (``type: script`` with ``path: hub/<id>/<app>/<name>``): their paths and
their vendored copies. No network here: this runs while a DAG file is parsed.

A hub script is identified by its path: ``<id>`` is the hub's version id of the script (a number;
a new version of a hub script gets a new id), ``<app>`` the integration (``slack``, ``github``)
and ``<name>`` the script. A flow's repository may hold a *vendored* copy in the git-sync layout:
``<workspace root>/hub/<id>/<app>/<name>.<ext>`` (what ``airflow-openflow hub pull`` writes); the
loader then inlines it like any workspace script (spec/scripts.py). Without one, the step fetches
the script from the hub when it runs (runtime/hub.py).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from airflow_openflow.spec.workspace import UnsafePathError

#: Windmill's prefix of hub script paths.
HUB_PREFIX = "hub/"
#: The folder of the workspace root holding vendored hub scripts.
HUB_FOLDER = "hub"

# One part of a hub path after the id: letters, digits, ``_``, ``-`` and ``.`` (never a leading
# dot: no ``.`` / ``..`` and no hidden file).
_PART = re.compile(r"[^\W.][\w.-]*\Z")
_VERSION_ID = re.compile(r"[0-9]{1,18}\Z")


def is_hub_path(path: str) -> bool:
    """Whether a ``type: script`` path names a Windmill Hub script."""
    return path.startswith(HUB_PREFIX)


def hub_path_problem(path: str) -> str | None:
    """Why ``path`` is not a hub script path ``hub/<id>/<app>/<name>``, or None."""
    parts = path.split("/")
    if parts[0] != HUB_FOLDER:
        return "does not start with hub/"
    if len(parts) < 3 or any(not part for part in parts):
        return "is not of the form hub/<id>/<app>/<name>"
    if not _VERSION_ID.match(parts[1]):
        return f"has {parts[1]!r} where the hub's script id (a number) belongs"
    bad = [part for part in parts[2:] if not _PART.match(part)]
    if bad:
        return f"has the part {bad[0]!r}: hub path parts are letters, digits, '_', '-' and '.'"
    return None


def check_hub_path(path: str) -> PurePosixPath:
    """``path`` as a relative path (``hub/<id>/<app>/<name>``) once :func:`hub_path_problem` found
    nothing; raises :class:`UnsafePathError` otherwise. Every use of a hub path as a file name or
    in a URL goes through this."""
    problem = hub_path_problem(path)
    if problem is not None:
        raise UnsafePathError(f"hub script path {path!r} {problem}")
    return PurePosixPath(path)


def vendored_pattern(path: str, workspace_root: str | Path | None) -> str:
    """Where a vendored copy of the hub script ``path`` is looked for, for messages:
    ``<root>/hub/<id>/<app>/<name>.<ext>``."""
    if workspace_root is None:
        return f"{path}.<ext> (the flow has no workspace folder: it was given as a document, not a file)"
    return f"{Path(workspace_root) / path}.<ext>"
