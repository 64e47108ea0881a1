"""The ``./shared`` directory of a ``same_worker`` flow (spec 7.3), kept in object storage.

Windmill gives every step of a ``same_worker`` flow one folder, ``./shared``, owned by the root
flow. Here steps may run on different workers, so the folder lives in Airflow object storage
(``airflow.sdk.ObjectStoragePath``): a local ``file://`` folder by default, S3 (or any store
Airflow has a filesystem for) when ``[openflow] shared_directory_base`` says so. Each DAG run has
one location, ``<base>/<dag_id>/<run_id>/``. Before a script step runs, the run's folder is copied
into ``<workdir>/shared``; after it ran (success or failure) the step's changes are copied back.

Layout of a run's location, and why nothing partial is ever read:

* ``objects/<upload id>/<relative path>``: file contents; every upload writes under a fresh prefix
  and never overwrites anything.
* ``manifests/<seq:012d>-<upload id>.json``: a committed version of the folder: for each file its
  object, size and sha256. A manifest is written last, in one piece (one PUT on S3; a temporary
  name then a rename on a local disk), after every object it lists. The folder's content is the
  manifest with the highest name; a download reads only the objects it lists and checks their
  sizes and hashes. An upload that died half-way left objects no manifest names: never seen.

Concurrent steps (parallel loop iterations or branches): each starts from the newest version and,
when it ends, applies only its own changes (files written, files deleted) on top of the newest
version at that moment. Different files from different steps all survive; for the same file the
step that finishes last wins. Windmill does not share ``./shared`` between parallel jobs at all.

A store that cannot be read or written fails the step with ``SharedDirectoryError`` naming the
location and the cause (a retry of the step, if it has retries, tries again).

This module imports Airflow only inside functions: ``runtime/step.py`` imports it, and step
semantics stay testable without Airflow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_openflow.runtime.errors import StepError

__all__ = [
    "SHARED_DIR_NAME",
    "SharedLocation",
    "shared_base",
    "shared_directory",
]

log = logging.getLogger(__name__)

#: The folder name steps see in their working directory.
SHARED_DIR_NAME = "shared"
#: Airflow configuration of the base location (``AIRFLOW__OPENFLOW__SHARED_DIRECTORY_BASE``).
CONFIG_SECTION = "openflow"
CONFIG_OPTION = "shared_directory_base"
ERROR_NAME = "SharedDirectoryError"

_MANIFEST_NAME = re.compile(r"\A(\d{12})-([0-9a-f]{32})\.json\Z")
_FORMAT = 1
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class SharedLocation:
    """Where one DAG run's shared folder lives: ``<base>/<dag_id>/<run_id>``.

    ``base`` is an object-storage URL (``file:///srv/openflow``, ``s3://aws_default@bucket/prefix``).
    """

    base: str
    dag_id: str
    run_id: str

    @property
    def url(self) -> str:
        return f"{self.base.rstrip('/')}/{self.dag_id}/{self.run_id}"

    @classmethod
    def for_run(cls, dag_id: str, run_id: str) -> SharedLocation:
        """The location of a run, under the configured base (see ``shared_base``)."""
        return cls(shared_base(), dag_id, run_id)


def shared_base() -> str:
    """``[openflow] shared_directory_base``; unset: ``file://$AIRFLOW_HOME/openflow/shared``,
    created when missing. A configured base is never created: a missing one is an error (on a
    local disk it is what an unmounted shared volume looks like)."""
    from airflow.sdk import conf

    configured = (conf.get(CONFIG_SECTION, CONFIG_OPTION, fallback="") or "").strip()
    if configured:
        return configured if "://" in configured else Path(configured).absolute().as_uri()
    home = Path(
        conf.get("core", "airflow_home", fallback="") or os.environ.get("AIRFLOW_HOME") or "~/airflow"
    )
    default = home.expanduser().absolute() / "openflow" / "shared"
    default.mkdir(parents=True, exist_ok=True)
    return default.as_uri()


class SharedDirectoryError(StepError):
    """The run's shared folder could not be read or written."""

    def __init__(self, location: str, what: str, cause: BaseException | str) -> None:
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(
            ERROR_NAME,
            f"shared directory at {location}: {what}: {reason}. The step ran on a worker that "
            "could not reach the flow's ./shared store (same_worker); check [openflow] "
            "shared_directory_base and its connection",
            location=location,
        )


@contextlib.contextmanager
def shared_directory(workdir: Path, location: SharedLocation | None) -> Iterator[Path | None]:
    """Give ``workdir/shared`` the run's shared folder while the block runs, then store the
    block's changes (also when it raises). ``location`` None: nothing is done (yields None).

    Raises ``SharedDirectoryError`` when the store cannot be read before the block, or cannot be
    written after a block that succeeded. After a block that raised, a failed upload is logged
    and the block's own error propagates.
    """
    if location is None:
        yield None
        return
    local = workdir / SHARED_DIR_NAME
    store = _Store(location)
    snapshot = store.download(local)
    try:
        yield local
    except BaseException:
        try:
            store.upload(local, snapshot)
        except SharedDirectoryError as exc:
            log.error("%s (after the step failed; its own error follows)", exc.message)
        raise
    store.upload(local, snapshot)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What a step started from: relative path -> sha256 of each file, and the empty folders."""

    files: dict[str, str]
    dirs: frozenset[str] = frozenset()


class _Store:
    def __init__(self, location: SharedLocation) -> None:
        self.location = location
        self.url = location.url

    # -- paths ------------------------------------------------------------------------------------

    def _root(self) -> Any:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(self.url)

    # -- reading ----------------------------------------------------------------------------------

    def _latest(self, root: Any) -> tuple[str, dict[str, Any]] | None:
        """The newest committed manifest (name, content), or None when the run has none yet."""
        manifests = root / "manifests"
        try:
            with contextlib.suppress(AttributeError, NotImplementedError):
                manifests.fs.invalidate_cache(manifests.path)  # another worker may have committed
            names = [
                str(p).rstrip("/").rsplit("/", 1)[-1] for p in manifests.fs.ls(manifests.path, detail=False)
            ]
        except FileNotFoundError:
            names = []
        except Exception as exc:
            raise SharedDirectoryError(self.url, "cannot list its versions", exc) from exc
        committed = sorted(n for n in names if _MANIFEST_NAME.match(n))
        if not committed:
            self._check_store()
            return None
        name = committed[-1]
        try:
            data = json.loads((manifests / name).read_bytes())
        except Exception as exc:
            raise SharedDirectoryError(self.url, f"cannot read its manifest {name}", exc) from exc
        if (
            not isinstance(data, dict)
            or data.get("format") != _FORMAT
            or not isinstance(data.get("files"), dict)
        ):
            raise SharedDirectoryError(self.url, f"manifest {name}", "not a manifest of this format")
        return name, data

    def _check_store(self) -> None:
        """A run without a version yet: the store itself must be there (the bucket, or the base
        folder on a disk), else it is an error rather than an empty folder."""
        from airflow.sdk import ObjectStoragePath

        base = ObjectStoragePath(self.location.base)
        try:
            if _is_local(base):
                found = base.is_dir()
                what = "the base folder does not exist"
            else:
                bucket = base.bucket or base.path.split("/", 1)[0]
                found = base.fs.exists(bucket)
                what = f"the bucket {bucket!r} does not exist or cannot be reached"
        except Exception as exc:
            raise SharedDirectoryError(self.url, "cannot reach the store", exc) from exc
        if not found:
            raise SharedDirectoryError(self.url, "cannot reach the store", what)

    def download(self, local: Path) -> _Snapshot:
        """Fill ``local`` (created, emptied) with the newest committed version."""
        if local.exists():
            shutil.rmtree(local)
        local.mkdir(parents=True)
        root = self._root()
        latest = self._latest(root)
        if latest is None:
            log.info("shared directory %s: empty (no version committed yet)", self.url)
            return _Snapshot({})
        name, manifest = latest
        files: dict[str, str] = {}
        for rel, entry in manifest["files"].items():
            target = _inside(local, rel)
            try:
                data = (root / entry["object"]).read_bytes()
            except Exception as exc:
                raise SharedDirectoryError(
                    self.url, f"cannot read {rel!r} (object {entry.get('object')}) of {name}", exc
                ) from exc
            if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise SharedDirectoryError(
                    self.url, f"object {entry['object']} of {name}", "its content does not match the manifest"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            files[rel] = entry["sha256"]
        dirs = frozenset(str(rel) for rel in manifest.get("dirs", []))
        for rel in dirs:
            _inside(local, rel).mkdir(parents=True, exist_ok=True)
        log.info("shared directory %s: %d file(s) of version %s", self.url, len(files), name)
        return _Snapshot(files, dirs)

    # -- writing ----------------------------------------------------------------------------------

    def upload(self, local: Path, snapshot: _Snapshot) -> None:
        """Store what the step changed in ``local`` since ``snapshot`` as a new version."""
        current, dirs = _scan(local)
        changed = {rel: digest for rel, digest in current.items() if snapshot.files.get(rel) != digest}
        deleted = [rel for rel in snapshot.files if rel not in current]
        if not changed and not deleted and set(dirs) == snapshot.dirs:
            return
        upload_id = uuid.uuid4().hex
        root = self._root()
        entries: dict[str, dict[str, Any]] = {}
        for rel in sorted(changed):
            key = f"objects/{upload_id}/{rel}"
            path = local / rel
            try:
                _write(root / key, path.read_bytes())
            except Exception as exc:
                raise SharedDirectoryError(self.url, f"cannot upload {rel!r}", exc) from exc
            entries[rel] = {"object": key, "size": path.stat().st_size, "sha256": changed[rel]}
        latest = self._latest(root)  # the newest version now: a concurrent step may have committed
        base_files: dict[str, Any] = dict(latest[1]["files"]) if latest else {}
        base_dirs = {str(d) for d in latest[1].get("dirs", [])} if latest else set()
        base_files.update(entries)
        for rel in deleted:
            base_files.pop(rel, None)
        seq = int(latest[0][:12]) + 1 if latest else 1
        name = f"{seq:012d}-{upload_id}.json"
        manifest = {
            "format": _FORMAT,
            "seq": seq,
            "parent": latest[0] if latest else None,
            "files": dict(sorted(base_files.items())),
            # empty folders: this step's, plus those another step added since this one started
            "dirs": sorted(set(dirs) | (base_dirs - snapshot.dirs)),
        }
        self._commit(root, name, json.dumps(manifest, indent=1).encode())
        log.info(
            "shared directory %s: version %s (%d file(s) written, %d deleted by this step)",
            self.url,
            name,
            len(changed),
            len(deleted),
        )

    def _commit(self, root: Any, name: str, data: bytes) -> None:
        manifests = root / "manifests"
        target = manifests / name
        try:
            if _is_local(root):
                temporary = manifests / f".{name}.{uuid.uuid4().hex}.tmp"
                _write(temporary, data)
                temporary.rename(target)  # atomic on one disk: the manifest appears whole
            else:
                target.write_bytes(data)  # one PUT: an object store shows all of it or none
        except Exception as exc:
            raise SharedDirectoryError(self.url, f"cannot commit the manifest {name}", exc) from exc


def _is_local(path: Any) -> bool:
    return path.protocol in ("file", "local", "")


def _write(path: Any, data: bytes) -> None:
    if _is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)  # object stores have no folders to make
    path.write_bytes(data)


def _scan(local: Path) -> tuple[dict[str, str], list[str]]:
    """Files (relative POSIX path -> sha256) and empty folders under ``local``. Symbolic links to
    files count as those files; other special files are left out."""
    files: dict[str, str] = {}
    empty_dirs: list[str] = []
    if not local.is_dir():
        return files, empty_dirs
    for dirpath, dirnames, filenames in os.walk(local):
        here = Path(dirpath)
        if not dirnames and not filenames and here != local:
            empty_dirs.append(here.relative_to(local).as_posix())
        for filename in filenames:
            path = here / filename
            if path.is_file():
                files[path.relative_to(local).as_posix()] = _sha256(path)
    return files, empty_dirs


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _inside(local: Path, rel: str) -> Path:
    """``local / rel``, refusing a manifest path that would leave ``local``."""
    target = (local / rel).resolve()
    if not target.is_relative_to(local.resolve()):
        raise StepError(ERROR_NAME, f"manifest path {rel!r} leaves the shared directory")
    return target
