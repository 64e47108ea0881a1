"""A disk cache of loaded flow documents, so that re-parsing an unchanged flow skips the loader.

Airflow's DAG processor re-parses the DAG file every ``min_file_process_interval`` (30 s), and in
each parse ``load_openflow_dags`` loads every flow: YAML, ``!inline`` scripts, scripts by path,
sub-flows, the load-time checks. Most of the time nothing changed. This cache keeps each flow's
load result (the prepared :class:`OpenFlow` and its warnings) in a file of its own:

- **The entry's name** is a hash of the flow's path, its workspace root, this package's version and
  spec code, Python's and Airflow's versions, and which languages can run here
  (``languages.runtime_fingerprint``): anything else gets a different entry.
- **The entry is used** only while every file the load read still has the same bytes (sha256) and
  every folder it looked into the same entries (``read_log.ReadLog``): editing a flow, one of its
  scripts or sub-flows, adding a script file or a ``wmill.yaml``, all reload it.
- **Only flows without errors** are kept: a broken flow is loaded again each time, so its error is
  reported afresh.
- **Entries not used for a week are deleted** (a flow renamed, moved or deleted), in a pass at most
  once a day; a used entry's mtime says when it was last used.
- **Several DAG processors** can share the folder: an entry is written to a temporary file and
  renamed into place, and an entry that cannot be read (partly written, another version) is a miss.
  A folder that cannot be written to turns the cache off for that parse, with one warning.

The entries are pickles: the folder must be writable only by the user Airflow runs as (it is
created with mode 0700). ``[openflow] parse_cache_dir`` chooses it (docs/configuration.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import logging
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_openflow.spec.read_log import ReadLog

if TYPE_CHECKING:
    from airflow_openflow.spec.errors import Problem
    from airflow_openflow.spec.model import OpenFlow

log = logging.getLogger(__name__)

#: Bumped when the entry layout changes.
_FORMAT = 1

Prepared = tuple["OpenFlow", list["Problem"]]


@dataclass(frozen=True, slots=True)
class _Entry:
    files: dict[str, str]
    folders: dict[str, str]
    prepared: Prepared


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/airflow-openflow/parse``, else ``~/.cache/airflow-openflow/parse``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "airflow-openflow" / "parse"


class ParseCache:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0
        self._writable = True
        self._trusted: bool | None = None  # checked once, on first use

    def load(self, path: Path, root: Path | None, prepare: Callable[[], Prepared]) -> Prepared:
        """The cached load result of the flow at ``path``, or ``prepare()``'s (kept when it has no
        error). ``prepare`` may raise; nothing is kept then."""
        if self._trusted is None:
            self._trusted = self._check_folder()
            if self._trusted:
                _prune(self.directory)
        if not self._trusted:
            return prepare()
        entry_file = self.directory / f"{_entry_key(path, root)}.pickle"
        cached = _read_entry(entry_file)
        if cached is not None and _still_valid(cached):
            self.hits += 1
            _mark_used(entry_file)
            return cached.prepared
        self.misses += 1
        with ReadLog() as reads:
            prepared = prepare()
        if self._writable and not any(p.severity == "error" for p in prepared[1]):
            self._write(entry_file, _Entry(dict(reads.files), dict(reads.folders), prepared))
        return prepared

    def _check_folder(self) -> bool:
        """Whether the folder is safe to unpickle from: missing (it will be created 0700), or owned
        by this user and writable by nobody else. Anyone else who could write there could make the
        DAG processor run code of theirs."""
        try:
            info = self.directory.stat()
        except FileNotFoundError:
            return True
        except OSError as exc:
            log.warning("the OpenFlow parse cache in %s is not used: %s", self.directory, exc)
            return False
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            log.warning(
                "the OpenFlow parse cache in %s is not used: the folder is %s; it must belong to the "
                "user Airflow runs as and be writable by that user only (chmod 700)",
                self.directory,
                "another user's"
                if info.st_uid != os.getuid()
                else f"writable by others (mode {info.st_mode & 0o777:o})",
            )
            return False
        return True

    def _write(self, entry_file: Path, entry: _Entry) -> None:
        try:
            data = _dumps((_FORMAT, entry))
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                os.replace(temporary, entry_file)
            except BaseException:
                os.unlink(temporary)
                raise
        except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
            self._writable = False
            log.warning("the OpenFlow parse cache in %s is not used for this parse: %s", self.directory, exc)


class _Pickler(pickle.Pickler):
    """Pickles the spec's dataclasses as ``cls(*field values)``: unpickled through their
    ``__init__``, several times faster than the ``__setstate__`` slotted dataclasses get (which
    looks up the fields for every object)."""

    def reducer_override(self, obj: object) -> Any:
        kind = type(obj)
        if kind.__module__.startswith("airflow_openflow.spec.") and dataclasses.is_dataclass(kind):
            fields = _init_fields(kind)
            if fields is not None:
                return kind, tuple(getattr(obj, name) for name in fields)
        return NotImplemented


@functools.cache
def _init_fields(kind: type) -> tuple[str, ...] | None:
    """The field names, in ``__init__``'s order; None when a field is not an ``__init__`` argument."""
    fields = dataclasses.fields(kind)
    return tuple(f.name for f in fields) if all(f.init for f in fields) else None


def _dumps(value: object) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


#: An entry not used for this long is deleted (its flow was renamed, moved or deleted).
UNUSED_ENTRY_S = 7 * 86400
#: How often an entry's use is recorded (its mtime), and how often the folder is pruned.
_DAY_S = 86400
_PRUNED_MARKER = ".pruned"


def _mark_used(entry_file: Path) -> None:
    """Record that the entry is still used: its mtime, at most once a day (a stat per hit)."""
    with contextlib.suppress(OSError):
        if time.time() - entry_file.stat().st_mtime > _DAY_S:
            os.utime(entry_file)


def _prune(directory: Path) -> None:
    """At most once a day: delete the entries unused for UNUSED_ENTRY_S and temporary files a
    crashed writer left. Several processes may prune at once: a file already gone is fine."""
    marker = directory / _PRUNED_MARKER
    now = time.time()
    try:
        if now - marker.stat().st_mtime < _DAY_S:
            return
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                old_after = UNUSED_ENTRY_S if entry.name.endswith(".pickle") else _DAY_S
                if entry.name != _PRUNED_MARKER and now - entry.stat().st_mtime > old_after:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        marker.touch()
    except OSError as exc:  # read-only, or gone: the cache works without pruning
        log.debug("parse cache %s not pruned: %s", directory, exc)


def _read_entry(entry_file: Path) -> _Entry | None:
    try:
        with open(entry_file, "rb") as handle:
            version, entry = pickle.load(handle)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a partial, foreign or older entry: load the flow again
        log.debug("parse cache entry %s not used: %s", entry_file, exc)
        return None
    return entry if version == _FORMAT and isinstance(entry, _Entry) else None


def _still_valid(entry: _Entry) -> bool:
    reads = ReadLog()
    reads.files, reads.folders = entry.files, entry.folders
    return reads.still_valid()


def _entry_key(path: Path, root: Path | None) -> str:
    from airflow_openflow.spec.workspace import workspace_root_for

    # The workspace as the load finds it: a flow loaded on its own (root None) gets the git-sync
    # root around it, which a wmill.yaml added above it changes.
    workspace = workspace_root_for(path, root)
    text = "\0".join((os.path.realpath(path), str(workspace), _environment()))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


@functools.cache
def _environment() -> str:
    """What else a load result depends on: versions, the spec code itself (an edited checkout
    keeps its version number), which languages can run here."""
    from importlib import metadata

    from airflow_openflow.spec.languages import runtime_fingerprint
    from airflow_openflow.version import __version__

    try:
        airflow = metadata.version("apache-airflow-core")
    except metadata.PackageNotFoundError:
        airflow = "-"
    spec = Path(__file__).parent
    code = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in spec.glob("*.py"))
    return repr((_FORMAT, __version__, sys.version, airflow, code, runtime_fingerprint()))
