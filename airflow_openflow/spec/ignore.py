"""Which files of a flows folder are out of scope: ``.airflowignore`` files and ``wmill.yaml``.

``.airflowignore`` follows Airflow's own rule (``airflow/_shared/module_loading/file_discovery.py``
in Airflow 3.3, which has no public helper): every ``.airflowignore`` at or under the folder
flows are loaded from adds its patterns for its folder and the folders below; a ``#`` starts a
comment; the syntax is ``[core] dag_ignore_file_syntax``:

- ``glob`` (Airflow's default): gitignore patterns, the last matching one wins (``!`` re-includes);
  a pattern with a ``/`` at its start or middle is relative to the folder of its ``.airflowignore``,
  else it matches a file or folder name at any level; a trailing ``/`` matches folders only.
- ``regexp``: a pattern ignores a path when it matches (``re.search``) anywhere in the path
  relative to the folder flows are loaded from.

An ignored folder is not entered. ``.airflowignore`` files above that folder are not read: a DAG
folder often ignores its flows folder so that Airflow does not look for Python files there.

``wmill.yaml`` is the Windmill CLI's project file: its ``includes``, ``excludes`` and
``extraIncludes`` glob lists say which files ``wmill sync`` handles. A file is in scope when
``includes`` is empty or one of them matches, none of ``excludes`` matches, and ``extraIncludes``
is empty or one of them matches; patterns are minimatch globs matched against the file's path
relative to the folder of ``wmill.yaml`` (``*`` stops at ``/``, ``**`` spans folders, a name
starting with ``.`` matches only a pattern that starts with ``.``, ``{a,b}`` alternatives). The
nearest ``wmill.yaml`` at or above a file applies.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from airflow_openflow.spec.workspace import UnsafePathError, read_regular_file

log = logging.getLogger(__name__)

AIRFLOWIGNORE = ".airflowignore"
WMILL_CONFIG = "wmill.yaml"
IGNORE_SYNTAXES = ("glob", "regexp")
_COMMENT = re.compile(r"\s*#.*")
#: Brace alternatives expanded per pattern at most (``{a,b}{c,d}`` is 4).
_MAX_ALTERNATIVES = 256


def _gitignore_pattern(pattern: str) -> Any:
    try:  # pathspec >= 1.0 (what Airflow 3.3 pins)
        from pathspec.patterns.gitignore.basic import GitIgnoreBasicPattern

        return GitIgnoreBasicPattern(pattern)
    except ImportError:  # pathspec 0.x: the same rules under their old name
        from pathspec.patterns.gitwildmatch import GitWildMatchPattern

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return GitWildMatchPattern(pattern)


class _GlobRule(NamedTuple):
    pattern: Any  # a pathspec gitignore pattern
    relative_to: Path | None  # None: the pattern matches a name at any level
    dir_only: bool


class _RegexpRule(NamedTuple):
    pattern: re.Pattern[str]


Rule = _GlobRule | _RegexpRule


class AirflowIgnore:
    """The ``.airflowignore`` rules under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], syntax: str | None = "glob") -> None:
        self.root = Path(os.path.abspath(root))
        self.syntax = (syntax or "glob").strip().lower()
        if self.syntax not in IGNORE_SYNTAXES:
            raise ValueError(f"unsupported [core] dag_ignore_file_syntax {syntax!r}: use glob or regexp")

    def rules_for(
        self, folder: str, inherited: tuple[Rule, ...], file_names: Sequence[str]
    ) -> tuple[Rule, ...]:
        """The rules in force in ``folder``: the inherited ones plus its own ``.airflowignore``."""
        if AIRFLOWIGNORE not in file_names:
            return inherited
        definition = Path(folder, AIRFLOWIGNORE)
        try:
            text = read_regular_file(definition).decode("utf-8", errors="replace")
        except (OSError, UnsafePathError) as exc:
            log.warning("cannot read %s, its patterns are not used: %s", definition, exc)
            return inherited
        rules = list(inherited)
        for line in text.split("\n"):
            pattern = _COMMENT.sub("", line)
            if pattern:
                rule = self._compile(pattern, definition)
                if rule is not None:
                    rules.append(rule)
        return tuple(rules)

    def _compile(self, pattern: str, definition: Path) -> Rule | None:
        if self.syntax == "regexp":
            try:
                return _RegexpRule(re.compile(pattern))
            except re.error as exc:
                log.warning("ignoring invalid regexp %r in %s: %s", pattern, definition, exc)
                return None
        if pattern.strip() == "/":
            return None  # matches nothing in gitignore
        relative_to = definition.parent if pattern.startswith("/") or "/" in pattern.rstrip("/") else None
        bare = pattern.lstrip("!").rstrip()
        try:
            compiled = _gitignore_pattern(pattern)
        except Exception as exc:  # pathspec raises its own errors for malformed patterns
            log.warning("ignoring invalid pattern %r in %s: %s", pattern, definition, exc)
            return None
        return _GlobRule(compiled, relative_to, bare != bare.rstrip("/"))

    def ignores(self, path: str, *, is_dir: bool, rules: tuple[Rule, ...]) -> bool:
        if not rules:
            return False
        if self.syntax == "regexp":
            relative = os.path.relpath(path, self.root)
            return any(rule.pattern.search(relative) is not None for rule in rules)  # type: ignore[union-attr]
        matched = False
        for rule in rules:
            assert isinstance(rule, _GlobRule)
            if rule.dir_only and not is_dir:
                continue
            if rule.relative_to is not None:
                text = Path(os.path.relpath(path, rule.relative_to)).as_posix()
            else:
                text = os.path.basename(path)
            if is_dir:
                text += "/"
            if rule.pattern.include is not None and rule.pattern.match_file(text) is not None:
                matched = bool(rule.pattern.include)
        return matched


# -- wmill.yaml ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WmillScope:
    """The ``includes``/``excludes``/``extraIncludes`` of one ``wmill.yaml``."""

    folder: str
    includes: tuple[re.Pattern[str], ...] = ()
    excludes: tuple[re.Pattern[str], ...] = ()
    extra_includes: tuple[re.Pattern[str], ...] = ()

    def admits(self, path: str) -> bool:
        relative = Path(os.path.relpath(path, self.folder)).as_posix()
        if relative.startswith("../"):
            return True  # not under this wmill.yaml
        return (
            (not self.includes or any(p.fullmatch(relative) for p in self.includes))
            and not any(p.fullmatch(relative) for p in self.excludes)
            and (not self.extra_includes or any(p.fullmatch(relative) for p in self.extra_includes))
        )


def read_wmill_scope(folder: str) -> WmillScope | None:
    """The scope of ``<folder>/wmill.yaml``, or None when it has no include/exclude list (or cannot
    be read: then a warning says so and every file is in scope)."""
    from airflow_openflow.spec.yaml_io import load_yaml

    path = os.path.join(folder, WMILL_CONFIG)
    try:
        data = load_yaml(read_regular_file(path).decode("utf-8-sig"))
    except Exception as exc:  # unreadable or not YAML: the flows are still found
        log.warning("cannot read %s, its includes/excludes are not used: %s", path, exc)
        return None
    if not isinstance(data, dict):
        return None
    lists = {}
    for key in ("includes", "excludes", "extraIncludes"):
        value = data.get(key)
        patterns = [p for p in value if isinstance(p, str)] if isinstance(value, list) else []
        lists[key] = tuple(_minimatch(p) for p in patterns)
    if not any(lists.values()):
        return None
    return WmillScope(folder, lists["includes"], lists["excludes"], lists["extraIncludes"])


def nearest_wmill_scope(folder: str) -> WmillScope | None:
    """The scope of the nearest ``wmill.yaml`` at or above ``folder`` (the Windmill CLI looks up)."""
    here = Path(os.path.abspath(folder))
    for candidate in (here, *here.parents):
        if os.path.isfile(candidate / WMILL_CONFIG):
            return read_wmill_scope(str(candidate))
    return None


def _minimatch(pattern: str) -> re.Pattern[str]:
    """A regular expression for a minimatch glob (see the module docstring)."""
    negate = False
    while pattern.startswith("!"):
        negate, pattern = not negate, pattern[1:]
    while pattern.startswith("./"):
        pattern = pattern[2:]
    body = "|".join(_glob_regex(p) for p in _expand_braces(pattern))
    return re.compile(f"(?!(?:{body})$).*" if negate else f"(?:{body})", re.DOTALL)


def _expand_braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*,[^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    expanded: list[str] = []
    for choice in match.group(1).split(","):
        expanded.extend(_expand_braces(pattern[: match.start()] + choice + pattern[match.end() :]))
        if len(expanded) > _MAX_ALTERNATIVES:
            break
    return expanded[:_MAX_ALTERNATIVES]


_SEGMENT = r"(?!\.)[^/]+"


def _glob_regex(pattern: str) -> str:
    segments = pattern.split("/")
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(f"(?:{_SEGMENT}(?:/{_SEGMENT})*)?" if last else f"(?:{_SEGMENT}/)*")
            continue
        parts.append(_segment_regex(segment) + ("" if last else "/"))
    return "".join(parts)


def _segment_regex(segment: str) -> str:
    out = [] if segment.startswith(".") else [r"(?!\.)"]
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(segment):
            i += 1
            out.append(re.escape(segment[i]))
        elif char == "[" and (end := segment.find("]", i + 2)) != -1:
            inner = segment[i + 1 : end]
            negated = inner[:1] in ("!", "^")
            inner = (inner[1:] if negated else inner).replace("\\", "\\\\").replace("[", "\\[")
            out.append(f"[{'^' if negated else ''}{inner}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)
