"""The workspace a flow document may read from, and the only way files under it are read.

A document names other files: ``!inline`` scripts next to it, workspace scripts (``type: script``)
and sub-flows (``type: flow``) by their Windmill path. Whatever a document says, these reads stay
inside its workspace root: absolute paths and ``..`` that leave the root are refused, symlinks are
followed only when their target is inside the root, and only regular files up to a size limit are
read (never ``/dev/zero``, a FIFO or ``/proc/self/environ``). What is read can end up in the DAG's
docs, visible to anyone who can see the DAG, so this is a security boundary.

The workspace root is the folder flows were loaded from (``load_openflow_dags``'s folder). For a
flow loaded on its own (``run_flow``/``render`` of one file) it is the Windmill git-sync root
around it: the nearest folder above holding ``wmill.yaml``, else the folder holding the flow's
``f/`` or ``u/`` top folder, else the folder of the flow itself.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from airflow_openflow.spec.read_log import note_folder, note_read

#: The largest file a document may name (an ``!inline`` script, a workspace script, a sub-flow)
#: and the largest flow document read. Windmill scripts are a few kB; this is a guard, not a quota.
MAX_FILE_BYTES = 8 * 1024 * 1024

#: Windmill's top-level folders of workspace paths: ``f/<folder>/...`` and ``u/<user>/...``.
_WORKSPACE_TOP_FOLDERS = ("f", "u")
_REPOSITORY_MARKER = "wmill.yaml"


class UnsafePathError(ValueError):
    """A path a document names is outside its workspace or not a readable regular file."""


def workspace_root_for(document: str | os.PathLike[str], root: str | os.PathLike[str] | None) -> Path:
    """The real path of the workspace of the flow document at ``document``.

    ``root``: the folder the flow was discovered under, which is then the workspace; None for a flow
    loaded on its own (see the module docstring).
    """
    if root is not None:
        return Path(os.path.realpath(root))
    document = os.path.abspath(document)
    folder = os.path.dirname(document)
    # The flow's own location: its git-sync folder (``x.flow/``) or its file.
    location = folder if folder.endswith((".flow", "__flow")) else document
    return _standalone_root(location)


def repository_root_within(document: str | os.PathLike[str], searched: str | os.PathLike[str]) -> Path:
    """The workspace of a flow found by searching ``searched``: the nearest folder between the two
    that holds ``wmill.yaml`` (a git-sync repository kept in a sub-folder, e.g. ``repo/windmill/``),
    else ``searched`` itself. Never a folder above ``searched``."""
    top = Path(os.path.realpath(searched))
    here = Path(os.path.realpath(document))
    for candidate in here.parents:
        if candidate == top or top not in candidate.parents:
            break
        if (candidate / _REPOSITORY_MARKER).is_file():
            return candidate
    return top


def _standalone_root(location: str) -> Path:
    return git_sync_root_of(location) or Path(os.path.realpath(Path(location).parent))


def git_sync_root_of(location: str | os.PathLike[str]) -> Path | None:
    """The real path of the Windmill git-sync root around ``location`` (a flow file or folder):
    the nearest folder above holding ``wmill.yaml``, else the folder holding its ``f/`` or ``u/``
    top folder; None when there is neither."""
    here = Path(os.path.abspath(location))
    for candidate in here.parents:
        if (candidate / _REPOSITORY_MARKER).is_file():
            return Path(os.path.realpath(candidate))
    # ``<root>/f/<folder>/<name>``: a Windmill path is a top folder and at least two more parts.
    parts = here.parts
    for index in range(len(parts) - 3, 0, -1):
        if parts[index] in _WORKSPACE_TOP_FOLDERS:
            return Path(os.path.realpath(Path(*parts[:index])))
    return None


def resolve_in_workspace(root: Path, name: str, *, relative_to: Path | None = None) -> Path:
    """The real path of ``name`` (relative to ``relative_to``, default the root) inside ``root``.

    Raises :class:`UnsafePathError` for an empty, absolute or home-relative name, a name with a NUL,
    and a name whose real path (symlinks followed) is outside the root. The file need not exist.
    """
    if not name or not name.strip():
        raise UnsafePathError("the path is empty")
    if "\0" in name:
        raise UnsafePathError("the path contains a NUL character")
    if name.startswith(("/", "\\", "~")) or PurePosixPath(name).is_absolute() or os.path.isabs(name):
        raise UnsafePathError(f"{name!r} is an absolute path; paths are relative to the workspace")
    base = relative_to if relative_to is not None else root
    real = Path(os.path.realpath(base / name))
    if not _is_inside(real, root):
        raise UnsafePathError(f"{name!r} leads outside the workspace {root}")
    return real


def is_plain_name(name: str) -> bool:
    """Whether ``name`` is one file name that stays in its folder: no separator, not ``.`` or
    ``..``, nothing :func:`resolve_in_workspace` would refuse. Such a name inside a folder whose
    real path is known resolves without a ``realpath``, unless the file is a symlink."""
    return (
        bool(name.strip())
        and name not in (".", "..")
        and not name.startswith("~")
        and not any(c in name for c in "/\\\0")
        and os.sep not in name
    )


def is_inside_workspace(path: str | os.PathLike[str], root: Path) -> bool:
    """Whether the real path of ``path`` (symlinks followed) is ``root`` or under it."""
    return _is_inside(Path(os.path.realpath(path)), root)


def _is_inside(real: Path, root: Path) -> bool:
    return real == root or real.is_relative_to(root)


def read_regular_file(
    path: str | os.PathLike[str], *, limit: int = MAX_FILE_BYTES, follow_symlinks: bool = True
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Never blocks on a FIFO or device (opened non-blocking, checked with ``fstat`` before reading)
    and never reads more than ``limit + 1`` bytes. Raises :class:`UnsafePathError` for anything
    that is not a regular file or is too large, ``OSError`` when it cannot be opened (with
    ``follow_symlinks=False``, also when ``path`` itself is a symlink: ``ELOOP``).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(f"{os.fspath(path)} is not a regular file")
        if info.st_size > limit:
            raise UnsafePathError(f"{os.fspath(path)} is {info.st_size} bytes, over the limit of {limit}")
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        if remaining <= 0:  # it grew while being read (or st_size lied, as for /proc files)
            raise UnsafePathError(f"{os.fspath(path)} is over the limit of {limit} bytes")
        data = b"".join(chunks)
        note_read(path, data)
        return data
    finally:
        os.close(fd)


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """``os.path.isfile`` without blocking: stat only (a FIFO or device is not a regular file)."""
    note_folder(os.path.dirname(os.path.abspath(path)))  # found or not, the answer is cached
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
