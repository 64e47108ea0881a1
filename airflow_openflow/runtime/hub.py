"""Windmill Hub scripts fetched when their step runs, and the local cache that keeps them.

A ``type: script`` step whose ``path`` is ``hub/<id>/<app>/<name>`` and that has no vendored copy
in the flow's repository (spec/hub.py) reaches the worker as a ``PathScript``. When it runs, its
code and language come from, in order:

1. the cache: ``<cache dir>/hub/<id>/<app>/<name>.json``, written by an earlier download;
2. the hub: ``GET <hub_url>/raw2/<id>/<app>/<name>``, which answers
   ``{"content", "language", "lockfile", "schema", "summary"}`` (Windmill's hub API, as Windmill's
   own workers use it); the answer is then written to the cache.

Then the step runs as a ``rawscript`` of that language and code. A hub script id names one version
of a script (a new version gets a new id), so a cached copy never goes stale.

Configuration (Airflow's ``[openflow]`` section, e.g. ``AIRFLOW__OPENFLOW__HUB_URL``):

* ``hub_url``: the hub, default ``https://hub.windmill.dev`` (Windmill's public hub);
* ``hub_cache_dir``: the cache folder, default ``$XDG_CACHE_HOME/airflow-openflow/hub`` (else
  ``~/.cache/airflow-openflow/hub``) of the user the task runs as.

When neither the cache nor the hub has the script, the step fails with ``HubScriptUnavailable``
naming both places: the vendored file that was looked for and the hub URL.

No network happens anywhere else: never while a DAG file is parsed. This module imports Airflow only
inside functions (its configuration); ``airflow-openflow hub pull`` uses the same client.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.spec.hub import check_hub_path, vendored_pattern
from airflow_openflow.spec.languages import BY_NAME, unsupported_language_message
from airflow_openflow.spec.model import PathScript, RawScript
from airflow_openflow.spec.workspace import MAX_FILE_BYTES, UnsafePathError, resolve_in_workspace

__all__ = [
    "DEFAULT_HUB_URL",
    "HubError",
    "HubScript",
    "cached_hub_script",
    "configured_hub_url",
    "fetch_hub_script",
    "hub_cache_dir",
    "resolve_hub_script",
]

log = logging.getLogger(__name__)

#: Windmill's public hub.
DEFAULT_HUB_URL = "https://hub.windmill.dev"
CONFIG_SECTION = "openflow"
ERROR_NAME = "HubScriptUnavailable"
#: Seconds to wait for the hub (connecting, then each read).
HUB_TIMEOUT_S = 30.0
_CACHE_FORMAT = 1


class HubError(Exception):
    """The hub could not give a script: unreachable, no such script, or an answer we cannot read."""


@dataclass(frozen=True, slots=True)
class HubScript:
    """A hub script as the hub describes it."""

    path: str  # hub/<id>/<app>/<name>
    language: str  # Windmill's language id (``python3``, ``bash``, ``deno``, ``bun``...)
    content: str
    lockfile: str | None = None
    summary: str | None = None
    schema: Any = None

    def to_json(self, hub_url: str) -> dict[str, Any]:
        return {
            "format": _CACHE_FORMAT,
            "path": self.path,
            "hub_url": hub_url,
            "language": self.language,
            "content": self.content,
            "lockfile": self.lockfile,
            "summary": self.summary,
            "schema": self.schema,
        }


def configured_hub_url() -> str:
    """``[openflow] hub_url`` (no trailing slash), Windmill's public hub when unset."""
    configured = _config("hub_url")
    return (configured or DEFAULT_HUB_URL).rstrip("/")


def hub_cache_dir() -> Path:
    """``[openflow] hub_cache_dir``, else the per-user cache folder (see the module docstring)."""
    configured = _config("hub_cache_dir")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "airflow-openflow" / "hub"


def _config(option: str) -> str:
    try:
        from airflow.sdk import conf
    except ImportError:  # ``airflow-openflow hub pull`` where Airflow is not installed
        return os.environ.get(f"AIRFLOW__OPENFLOW__{option.upper()}", "").strip()
    return str(conf.get(CONFIG_SECTION, option, fallback="") or "").strip()


def script_url(hub_url: str, path: str) -> str:
    """The hub's URL of the script ``path`` (``hub/<id>/<app>/<name>``) with its metadata. Raises
    :class:`HubError` for a hub URL that is not http(s)."""
    parts = check_hub_path(path).parts[1:]
    if urllib.parse.urlsplit(hub_url).scheme not in ("http", "https"):
        raise HubError(f"the hub URL {hub_url!r} is not an http:// or https:// URL ([openflow] hub_url)")
    return f"{hub_url.rstrip('/')}/raw2/" + "/".join(urllib.parse.quote(part, safe="") for part in parts)


def fetch_hub_script(path: str, hub_url: str, *, timeout_s: float = HUB_TIMEOUT_S) -> HubScript:
    """Download the hub script ``path`` from ``hub_url``. Raises :class:`HubError` saying why not,
    :class:`UnsafePathError` for a path that is not a hub script path."""
    url = script_url(hub_url, path)  # http(s) only
    # Windmill's workers ask for this endpoint with ``Accept: text/plain`` and read JSON back.
    request = urllib.request.Request(url, headers={"Accept": "text/plain", "User-Agent": "airflow-openflow"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(MAX_FILE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise HubError(f"the hub has no script {path!r} ({url} answered 404 Not Found)") from exc
        raise HubError(f"{url} answered {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise HubError(f"the hub at {hub_url} cannot be reached ({url}: {reason})") from exc
    if len(body) > MAX_FILE_BYTES:
        raise HubError(f"{url} answered more than {MAX_FILE_BYTES} bytes")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HubError(f"{url} did not answer a hub script (JSON): {exc}") from exc
    script = _script_of(path, data)
    if script is None:
        raise HubError(f"{url} did not answer a hub script: no 'content' and 'language' strings")
    return script


def _script_of(path: str, data: Any) -> HubScript | None:
    if not isinstance(data, dict):
        return None
    content, language = data.get("content"), data.get("language")
    if not isinstance(content, str) or not isinstance(language, str) or not language:
        return None
    lockfile = data.get("lockfile")
    summary = data.get("summary")
    return HubScript(
        path=path,
        language=language,
        content=content,
        lockfile=lockfile if isinstance(lockfile, str) else None,
        summary=summary if isinstance(summary, str) else None,
        schema=data.get("schema"),
    )


def _cache_file(cache_dir: Path, path: str) -> Path:
    """``<cache dir>/hub/<id>/<app>/<name>.json``, never outside the cache folder."""
    check_hub_path(path)
    root = Path(os.path.realpath(cache_dir))
    return resolve_in_workspace(root, f"{path}.json")


def cached_hub_script(path: str, cache_dir: Path) -> HubScript | None:
    """The cached copy of ``path``, or None (absent, or unreadable: then it is downloaded again)."""
    try:
        file = _cache_file(cache_dir, path)
        data = json.loads(file.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError, UnsafePathError) as exc:
        log.warning("hub script %s: the cached copy cannot be read (%s); downloading it again", path, exc)
        return None
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT or data.get("path") != path:
        return None
    return _script_of(path, data)


def store_in_cache(script: HubScript, cache_dir: Path, hub_url: str) -> Path:
    """Write ``script`` to the cache in one piece (a temporary file renamed), return the file."""
    file = _cache_file(cache_dir, script.path)
    file.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(script.to_json(hub_url), ensure_ascii=False, indent=1)
    fd, temporary = tempfile.mkstemp(prefix=".download-", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return file


def resolve_hub_script(value: PathScript, *, step_id: str) -> RawScript:
    """The ``rawscript`` a not-vendored hub script step runs: from the cache, else downloaded from
    the hub (and cached). Raises :class:`StepError` (``HubScriptUnavailable``) naming the vendored
    file looked for and the hub when neither has it; ``NotSupported`` for a language this release
    does not run."""
    hub_url = configured_hub_url()
    cache_dir = hub_cache_dir()
    try:
        check_hub_path(value.path)
        script = cached_hub_script(value.path, cache_dir)
        if script is not None:
            log.info(
                "step %s: hub script %s (%s) from the cache %s",
                step_id,
                value.path,
                script.language,
                cache_dir,
            )
        else:
            script = fetch_hub_script(value.path, hub_url)
            log.info(
                "step %s: hub script %s (%s) downloaded from %s",
                step_id,
                value.path,
                script.language,
                hub_url,
            )
            try:
                stored = store_in_cache(script, cache_dir, hub_url)
                log.info("step %s: hub script %s cached in %s", step_id, value.path, stored)
            except (OSError, UnsafePathError) as exc:  # the step still runs; the next one downloads again
                log.warning(
                    "step %s: hub script %s could not be cached in %s: %s",
                    step_id,
                    value.path,
                    cache_dir,
                    exc,
                )
    except (HubError, UnsafePathError) as exc:
        raise StepError(
            ERROR_NAME,
            f"hub script {value.path!r} is not vendored (no file "
            f"{vendored_pattern(value.path, value.workspace_root)}) and could not be downloaded "
            f"from the hub {hub_url}: {exc}. Vendor it where the hub is reachable with "
            "`airflow-openflow hub pull <flows folder>`, or set [openflow] hub_url",
            step_id=step_id,
            path=value.path,
            hub_url=hub_url,
        ) from exc
    language = BY_NAME.get(script.language)
    if language is None or not language.runs:
        raise StepError(
            "NotSupported",
            f"hub script {value.path!r}: {unsupported_language_message(script.language)}",
            step_id=step_id,
        )
    if script.lockfile and script.lockfile.strip():
        log.warning(
            "step %s: hub script %s has a lock (dependencies) that is not installed: it runs in the "
            "worker's environment",
            step_id,
            value.path,
        )
    return RawScript(
        language=script.language,
        content=script.content,
        input_transforms=value.input_transforms,
        path=value.path,
        is_trigger=value.is_trigger,
        json_path=value.json_path,
    )
