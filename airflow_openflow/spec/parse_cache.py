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
- **Checking an entry** costs a ``stat`` per file and folder: one whose size and mtime are as
  noted, and whose mtime was at least ``_RACY_S`` before the load began, is taken as unchanged
  (as ``make`` and Python's ``.pyc`` files do, with git's guard against a change within the
  timestamps' resolution); any other is hashed again.
- **Derived entries** (:meth:`ParseCache.get_derived`, :meth:`ParseCache.put_derived`) keep what
  a caller made from a load result, e.g. the built DAG (``dag_factory``): each is tied to the
  ``source`` digest of the files its load read, so it is used only together with a valid entry of
  the same load.
- **Several DAG processors** can share the folder: an entry is written to a temporary file and
  renamed into place, and an entry that cannot be read (partly written, another version) is a miss.
  A folder that cannot be written to turns the cache off for that parse, with one warning.

The entries are pickles: the folder must be writable only by the user Airflow runs as (it is
created with mode 0700). ``[openflow] parse_cache_dir`` chooses it (docs/configuration.md).
"""

from __future__ import annotations

import contextlib
import copyreg
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

from airflow_openflow.spec.read_log import ReadLog, file_digest, folder_digest

if TYPE_CHECKING:
    from airflow_openflow.spec.errors import Problem
    from airflow_openflow.spec.model import OpenFlow

log = logging.getLogger(__name__)

#: Bumped when the entry layout changes.
_FORMAT = 2
#: A file or folder changed less than this before its load began is hashed again, not trusted by
#: its stat: timestamps have a resolution (a few ms on ext4, 2 s on FAT), and a change made in the
#: same tick as the load could otherwise keep the stat of the content the load read.
_RACY_S = 2.0

Prepared = tuple["OpenFlow", list["Problem"]]


@dataclass(frozen=True, slots=True)
class _Entry:
    files: dict[str, str]
    folders: dict[str, str]
    # path -> (size, mtime_ns) of the files and folders old enough to be trusted by their stat
    stats: dict[str, tuple[int, int]]
    source: str  # digest of ``files`` and ``folders``: what derived entries are tied to
    prepared: bytes  # the pickled Prepared: unpickled only when a caller needs the flow


@dataclass(frozen=True, slots=True)
class _Derived:
    source: str
    data: bytes


class Lookup:
    """One flow's load through the cache: :meth:`prepared` gives its result (unpickled on first
    call); ``source`` names what the load read (None when the cache is not used)."""

    def __init__(self, source: str | None, *, blob: bytes | None = None, prepared: Prepared | None = None):
        self.source = source
        self.hit = blob is not None
        self._blob = blob
        self._prepared = prepared

    def prepared(self) -> Prepared:
        if self._prepared is None:
            assert self._blob is not None
            self._prepared = pickle.loads(self._blob)
        return self._prepared


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
        return self.lookup(path, root, prepare).prepared()

    def lookup(self, path: Path, root: Path | None, prepare: Callable[[], Prepared]) -> Lookup:
        """As :meth:`load`, without unpickling a cached result until it is asked for."""
        if not self._usable():
            return Lookup(None, prepared=prepare())
        entry_file = self.directory / f"{_entry_key(path, root)}.pickle"
        cached = _read_entry(entry_file)
        if cached is not None:
            stale = _stale_paths(cached)
            if stale is not None:
                self.hits += 1
                # hashed again and unchanged: note their stats once they can be trusted
                stats = _stats_of(cached, time.time()) if stale else cached.stats
                if stats != cached.stats and self._writable:
                    self._write(entry_file, dataclasses.replace(cached, stats=stats))
                else:
                    _mark_used(entry_file)
                return Lookup(cached.source, blob=cached.prepared)
        self.misses += 1
        began = time.time()
        with ReadLog() as reads:
            prepared = prepare()
        source = _source_digest(reads.files, reads.folders)
        if self._writable and not any(p.severity == "error" for p in prepared[1]):
            entry = _Entry(dict(reads.files), dict(reads.folders), {}, source, _dumps(prepared))
            self._write(entry_file, dataclasses.replace(entry, stats=_stats_of(entry, began)))
        return Lookup(source, prepared=prepared)

    def get_derived(self, name: str, source: str) -> bytes | None:
        """What :meth:`put_derived` kept under ``name`` for the same ``source``, else None."""
        if not self._usable():
            return None
        entry_file = self._derived_file(name)
        try:
            with open(entry_file, "rb") as handle:
                version, entry = pickle.load(handle)
        except FileNotFoundError:
            return None
        except Exception as exc:  # partial or foreign: made again
            log.debug("parse cache entry %s not used: %s", entry_file, exc)
            return None
        if version != _FORMAT or not isinstance(entry, _Derived) or entry.source != source:
            return None
        _mark_used(entry_file)
        return entry.data

    def put_derived(self, name: str, source: str, data: bytes) -> None:
        if self._usable() and self._writable:
            self._write(self._derived_file(name), _Derived(source, data))

    def _derived_file(self, name: str) -> Path:
        key = hashlib.sha256(f"derived\0{name}\0{_environment()}".encode("utf-8", "surrogateescape"))
        return self.directory / f"{key.hexdigest()}.pickle"

    def _usable(self) -> bool:
        if self._trusted is None:
            self._trusted = self._check_folder()
            if self._trusted:
                _prune(self.directory)
        return self._trusted

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

    def _write(self, entry_file: Path, entry: _Entry | _Derived) -> None:
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


@functools.cache
def fast_reducers() -> dict[type, Callable[[Any], tuple[Any, ...]]]:
    """A pickle ``dispatch_table`` for the spec's dataclasses: each is pickled as
    ``cls(*field values)``, unpickled through its ``__init__``, several times faster than the
    ``__setstate__`` slotted dataclasses get (which looks up the fields for every object). A table
    rather than ``reducer_override``: the C pickler looks a type up in it without calling Python
    for every other object. Made once, from the spec modules imported by then (the loader imports
    them all); a dataclass missing from it is pickled the ordinary way."""
    table: dict[type, Callable[[Any], tuple[Any, ...]]] = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("airflow_openflow.spec.") or module is None:
            continue
        for kind in vars(module).values():
            if (
                isinstance(kind, type)
                and kind.__module__ == name
                and dataclasses.is_dataclass(kind)
                and (fields := _init_fields(kind)) is not None
            ):
                table[kind] = functools.partial(_reduce_dataclass, fields)
    return table


@functools.cache
def _dispatch_table() -> dict[type, Any]:
    return {**copyreg.dispatch_table, **fast_reducers()}


def _reduce_dataclass(fields: tuple[str, ...], obj: Any) -> tuple[Any, ...]:
    return type(obj), tuple(getattr(obj, name) for name in fields)


@functools.cache
def _init_fields(kind: type) -> tuple[str, ...] | None:
    """The field names, in ``__init__``'s order; None when a field is not an ``__init__`` argument."""
    fields = dataclasses.fields(kind)
    return tuple(f.name for f in fields) if all(f.init for f in fields) else None


def _dumps(value: object) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _dispatch_table()
    pickler.dump(value)
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


def _stale_paths(entry: _Entry) -> list[str] | None:
    """None when something the load read changed; else the paths whose stat could not vouch for
    them but whose content (a file's bytes, a folder's entries) is as noted."""
    stale: list[str] = []
    for paths, digest_of in ((entry.files, file_digest), (entry.folders, folder_digest)):
        for path, digest in paths.items():
            noted = entry.stats.get(path)
            if noted is not None and noted == _stat_of(path):
                continue
            if digest_of(path) != digest:
                return None
            stale.append(path)
    return stale


def _stats_of(entry: _Entry, began: float) -> dict[str, tuple[int, int]]:
    """The stats of the entry's files and folders that changed at least _RACY_S before ``began``."""
    limit = int((began - _RACY_S) * 1e9)
    stats = {}
    for path in (*entry.files, *entry.folders):
        noted = _stat_of(path)
        if noted is not None and noted[1] < limit:
            stats[path] = noted
    return stats


def _stat_of(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_size, info.st_mtime_ns


def _source_digest(files: dict[str, str], folders: dict[str, str]) -> str:
    text = repr((sorted(files.items()), sorted(folders.items())))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


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
