"""What loading one flow document read from disk: the parse cache's record of when to reload it.

While a :class:`ReadLog` is active (``with ReadLog() as log:``), the spec layer's file access notes
each file it reads (by the hash of its bytes) and each folder it looks into for files that may or
may not be there (by the hash of its sorted entry names): a script found by globbing, a flow file
probed in a folder, ``wmill.yaml``. A cached result is valid while every noted file still has the
same bytes and every noted folder the same entries (spec/parse_cache.py checks that).

Noting costs nothing when no log is active (a context variable lookup).
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import stat
from types import TracebackType

_active: contextvars.ContextVar[ReadLog | None] = contextvars.ContextVar("openflow_read_log", default=None)

#: Recorded for a file that could not be read, or a folder that could not be listed.
MISSING = "-"


class ReadLog:
    def __init__(self) -> None:
        self.files: dict[str, str] = {}  # real path -> sha256 of its bytes, or MISSING
        self.folders: dict[str, str] = {}  # path -> sha256 of its sorted entry names, or MISSING
        self._token: contextvars.Token[ReadLog | None] | None = None

    def __enter__(self) -> ReadLog:
        self._token = _active.set(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._token is not None
        _active.reset(self._token)


def note_read(path: str | os.PathLike[str], data: bytes) -> None:
    """A file was read (and its folder looked into)."""
    log = _active.get()
    if log is not None:
        log.files[os.fspath(path)] = hashlib.sha256(data).hexdigest()
        note_folder(os.path.dirname(os.path.abspath(path)))


def note_file(path: str | os.PathLike[str]) -> None:
    """A file whose content matters although it is not read now (read once and kept in memory)."""
    log = _active.get()
    if log is not None and os.fspath(path) not in log.files:
        log.files[os.fspath(path)] = file_digest(os.fspath(path))


def note_folder(path: str | os.PathLike[str]) -> None:
    """A folder was looked into: which entries it has matters (a file found, or not found)."""
    log = _active.get()
    if log is not None:
        folder = os.fspath(path)
        if folder not in log.folders:
            log.folders[folder] = folder_digest(folder)


#: Larger than any file the loader reads (spec/workspace.py MAX_FILE_BYTES): such a file is MISSING.
_DIGEST_LIMIT = 16 * 1024 * 1024


def file_digest(path: str) -> str:
    """Never blocks: a FIFO or device put where a file was is MISSING, as is a file over the limit."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError):
        return MISSING
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _DIGEST_LIMIT:
            return MISSING
        digest, remaining = hashlib.sha256(), _DIGEST_LIMIT + 1
        while remaining > 0 and (chunk := os.read(fd, min(remaining, 1 << 20))):
            digest.update(chunk)
            remaining -= len(chunk)
        return digest.hexdigest() if remaining > 0 else MISSING
    except OSError:
        return MISSING
    finally:
        os.close(fd)


def folder_digest(path: str) -> str:
    try:
        names = sorted(os.listdir(path))
    except (OSError, ValueError):
        return MISSING
    return hashlib.sha256("\0".join(names).encode("utf-8", "surrogateescape")).hexdigest()
