"""Windmill CLI ``!inline <file>`` references (spec 9.2): read the referenced files next to the flow."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from airflow_openflow.spec.workspace import (
    UnsafePathError,
    is_inside_workspace,
    is_plain_name,
    read_regular_file,
    resolve_in_workspace,
)
from airflow_openflow.spec.yaml_io import INLINE_PREFIX

InlineKind = Literal["content", "lock"]


def is_inline_ref(value: object, *, kind: InlineKind) -> bool:
    """Whether a ``content``/``lock`` string is an ``!inline`` reference (the CLI's own tests)."""
    if not isinstance(value, str):
        return False
    # The CLI trims leading blanks of locks but not of contents.
    text = value.lstrip() if kind == "lock" else value
    return text.startswith(INLINE_PREFIX)


def inline_name(ref: str) -> str:
    return ref.lstrip()[len(INLINE_PREFIX) :].strip()


def fallback_name(name: str, module_id: str) -> str | None:
    """The CLI's second try: ``<module id>.<everything after the first dot of the name>``."""
    base = os.path.basename(name)
    if "." not in base:
        return None
    return module_id + "." + base.split(".", 1)[1]


@dataclass(frozen=True, slots=True)
class InlineRead:
    text: str | None  # None when no candidate could be read
    looked_for: list[str]  # the file names tried, in order
    reason: str = "not found"
    unsafe: bool = False  # refused for safety (outside the workspace, not a regular file, too big)


@dataclass
class InlineFiles:
    """Reads inline files relative to ``folder``, never outside ``workspace`` (spec/workspace.py),
    and remembers their bytes for the content hash."""

    folder: Path
    workspace: Path
    read_files: list[tuple[str, bytes]] = field(default_factory=list)
    _real_folder: Path | Literal[False] | None = field(default=None, repr=False)

    def read(self, ref: str, *, kind: InlineKind, module_id: str | None) -> InlineRead:
        name = inline_name(ref)
        if not name:
            return InlineRead(None, [], reason="the reference names no file")
        candidates = [name]
        if kind == "content" and module_id:
            fallback = fallback_name(name, module_id)
            if fallback is not None and fallback != name:
                candidates.append(fallback)
        for candidate in candidates:
            if is_plain_name(candidate) and self._inside_folder() is not None:
                fast = self._read_plain(candidate)
                if fast is _MISSING:
                    continue
                if isinstance(fast, InlineRead):
                    if fast.text is None:  # refused: say which names were tried
                        return InlineRead(None, candidates, reason=fast.reason, unsafe=fast.unsafe)
                    return InlineRead(fast.text, candidates)
                # a symlink: resolved (and checked) the general way
            try:
                real = resolve_in_workspace(self.workspace, candidate, relative_to=self.folder)
                if not os.path.lexists(real):
                    continue
                data = read_regular_file(real)
            except UnsafePathError as exc:
                return InlineRead(None, candidates, reason=f"cannot be read: {exc}", unsafe=True)
            except OSError:
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                return InlineRead(None, candidates, reason=f"{candidate} is not UTF-8 text")
            self.read_files.append((candidate, data))
            return InlineRead(text, candidates)
        return InlineRead(None, candidates)

    def _inside_folder(self) -> Path | None:
        """The real path of ``folder`` when it is inside the workspace (one ``realpath`` per flow)."""
        if self._real_folder is None:
            real = Path(os.path.realpath(self.folder))
            self._real_folder = real if is_inside_workspace(real, self.workspace) else False
        return self._real_folder or None

    def _read_plain(self, name: str) -> InlineRead | object | None:
        """Read ``name`` in the real folder without resolving it: ``_MISSING`` when there is no
        such file, None when it is a symlink (the caller resolves it), else the read."""
        folder = self._inside_folder()
        assert folder is not None
        path = folder / name
        try:
            data = read_regular_file(path, follow_symlinks=False)  # a symlink fails with ELOOP
        except UnsafePathError as exc:
            return InlineRead(None, [], reason=f"cannot be read: {exc}", unsafe=True)
        except FileNotFoundError:
            return _MISSING
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None
            return _MISSING  # as the general way: a file that cannot be opened is not found
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return InlineRead(None, [], reason=f"{name} is not UTF-8 text")
        self.read_files.append((name, data))
        return InlineRead(text, [])


#: ``InlineFiles._read_plain``: no file of that name.
_MISSING = object()
