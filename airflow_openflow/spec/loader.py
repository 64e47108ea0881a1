"""Load an OpenFlow document from a dict, a JSON/YAML file or a Windmill git-sync flow folder.

Happy path cost: one file read, ``json.loads`` or libyaml, one walk building the model, one sha256.
Line numbers are only computed (by re-composing the text) when there is a problem to report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from airflow_openflow.spec.bounds import MAX_DEPTH, DocumentTooComplexError, check_size
from airflow_openflow.spec.errors import FlowDocumentError, Problem
from airflow_openflow.spec.inline import InlineFiles
from airflow_openflow.spec.locate import with_lines
from airflow_openflow.spec.meaning_check import check_meaning
from airflow_openflow.spec.model import FlowSource, OpenFlow
from airflow_openflow.spec.parse import ParseResult, parse_document
from airflow_openflow.spec.paths import FLOW_FILE_NAMES, workspace_path_for
from airflow_openflow.spec.read_log import note_folder
from airflow_openflow.spec.schema_check import check_schemas
from airflow_openflow.spec.syntax_check import check_result_references, check_syntax
from airflow_openflow.spec.workspace import (
    MAX_FILE_BYTES,
    UnsafePathError,
    is_inside_workspace,
    is_regular_file,
    read_regular_file,
    workspace_root_for,
)
from airflow_openflow.spec.yaml_io import FlowYamlLoader, load_yaml

FlowInput = dict[str, Any] | str | os.PathLike[str]

DOCUMENT_SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


@dataclass(frozen=True, slots=True)
class LoadedFlow:
    flow: OpenFlow
    warnings: list[Problem]


@dataclass
class LoadResult:
    """Everything :func:`load_flow` found, without raising (``flow`` is None when there are errors)."""

    flow: OpenFlow | None
    errors: list[Problem]
    warnings: list[Problem]


def load_flow(source: FlowInput, *, root: str | os.PathLike[str] | None = None) -> LoadedFlow:
    """Load and validate a flow document; raise :class:`FlowDocumentError` with every error found.

    ``source``: a parsed document (dict), a ``.json``/``.yaml``/``.yml`` file, a git-sync flow folder
    (``<name>.flow/`` or ``<name>__flow/``) or the ``flow.yaml``/``flow.json`` inside one.
    ``root``: the folder flows were discovered under; the workspace path is computed relative to it.
    """
    result = load_flow_result(source, root=root)
    if result.errors or result.flow is None:
        raise FlowDocumentError(result.errors, result.warnings)
    return LoadedFlow(flow=result.flow, warnings=result.warnings)


def load_flow_result(source: FlowInput, *, root: str | os.PathLike[str] | None = None) -> LoadResult:
    """Like :func:`load_flow` but returns the problems instead of raising (for bad documents)."""
    if isinstance(source, dict):
        return _load_dict(source)
    if isinstance(source, (str, os.PathLike)):
        return _load_path(Path(source), root=None if root is None else Path(root))
    raise TypeError(f"load_flow() takes a dict or a path, not {type(source).__name__}")


# ---------------------------------------------------------------------------------------------


def _load_dict(data: dict[str, Any]) -> LoadResult:
    source = FlowSource(file=None, format="dict")
    parsed = parse_document(data, source=source, inline=None)
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return _finish(parsed, hashlib.sha256(raw.encode("utf-8")), None, None)


def _error(path: Path | str, message: str, hint: str | None = None, line: int | None = None) -> LoadResult:
    return LoadResult(None, [Problem(message, file=str(path), line=line, hint=hint)], [])


def _load_path(path: Path, *, root: Path | None) -> LoadResult:
    located = _locate_document(path)
    if isinstance(located, LoadResult):
        return located
    file = located
    fmt = cast(Literal["json", "yaml"], DOCUMENT_SUFFIXES[file.suffix.lower()])
    file_name = str(file)
    workspace = workspace_root_for(file, root)
    if root is not None and not is_inside_workspace(file, workspace):
        return _error(
            file,
            f"the flow file is a link to {os.path.realpath(file)}, outside the folder flows are loaded "
            f"from ({workspace})",
            "flows are read only from inside that folder: copy the flow there instead of linking it",
        )
    try:
        raw = read_regular_file(file)
    except UnsafePathError as exc:
        return _error(
            file,
            f"cannot read the flow file: {exc}",
            f"a flow document is a regular file of at most {MAX_FILE_BYTES // (1024 * 1024)} MiB",
        )
    except OSError as exc:
        return _error(file, f"cannot read the flow file: {exc.strerror or exc}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _error(file, f"the flow file is not UTF-8 text ({exc.reason} at byte {exc.start})")

    data, syntax_error = _parse_text(text, fmt=fmt, file=file_name)
    if syntax_error is not None:
        return LoadResult(None, [syntax_error], [])

    # One rule for workspace paths (and so dag ids) across the package: ``spec.paths``.
    source = FlowSource(
        file=file_name,
        format=fmt,
        workspace_path=workspace_path_for(file, root),
        root=None if root is None else os.path.abspath(root),
        workspace_root=str(workspace),
    )
    inline = InlineFiles(folder=file.parent, workspace=workspace)
    parsed = parse_document(data, source=source, inline=inline)
    digest = hashlib.sha256(raw)
    for name, content in inline.read_files:  # the inline files are part of what the flow runs
        digest.update(b"\0" + name.encode("utf-8") + b"\0" + content)
    return _finish(parsed, digest, text, file_name)


def _finish(parsed: ParseResult, digest: Any, text: str | None, file: str | None) -> LoadResult:
    errors, warnings = parsed.errors, parsed.warnings
    if parsed.flow is not None:  # a document that parses: what it says must also make sense
        checked = check_document(parsed.flow)
        errors = [*errors, *(p for p in checked if p.severity == "error")]
        warnings = [*warnings, *(p for p in checked if p.severity != "error")]
    if text is not None and (errors or warnings):
        located = with_lines([*errors, *warnings], text)
        errors, warnings = located[: len(errors)], located[len(errors) :]
    flow = parsed.flow
    if flow is not None and not errors:
        flow = dataclasses.replace(flow, content_hash=digest.hexdigest())
    return LoadResult(flow if not errors else None, errors, warnings)


def check_document(flow: OpenFlow) -> list[Problem]:
    """What a well-formed document may still get wrong: its JSON schemas, the syntax of its code,
    settings that mean nothing where they are. Problems without lines (the caller adds them)."""
    return [*check_meaning(flow), *check_schemas(flow), *check_syntax(flow), *check_result_references(flow)]


def _parse_text(text: str, *, fmt: str, file: str) -> tuple[Any, Problem | None]:
    """Parse JSON or YAML; a syntax error becomes a Problem at the parser's own line."""
    try:
        if fmt == "json":
            data = json.loads(text, object_pairs_hook=_object_without_duplicates)
            if text.count("[") + text.count("{") >= MAX_DEPTH:  # else it cannot nest that deep
                check_size(data)
            return data, None
        return load_yaml(text), None
    except json.JSONDecodeError as exc:
        return None, Problem(
            f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            file=file,
            line=exc.lineno,
            hint="fix the JSON syntax at that position",
        )
    except _DuplicateKeyError as exc:
        first, again = _duplicate_key_lines(text, exc.key)
        return None, Problem(
            f"invalid JSON: duplicate key {exc.key!r}"
            + (f" (first at line {first}, again at line {again})" if again else ""),
            file=file,
            line=again,
            hint="keep only one of them: Windmill refuses duplicate keys",
        )
    except (DocumentTooComplexError, RecursionError) as exc:
        message = (
            exc.message
            if isinstance(exc, DocumentTooComplexError)
            else (f"the document nests lists and objects deeper than {MAX_DEPTH} levels")
        )
        return None, Problem(
            message,
            file=file,
            line=exc.line if isinstance(exc, DocumentTooComplexError) else None,
            hint="a flow document this large or deep is not a flow: check what wrote it",
        )
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = None if mark is None else mark.line + 1
        column = None if mark is None else mark.column + 1
        what = " ".join(
            str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None)) if part
        ) or str(exc)
        where = f" (line {line}, column {column})" if line is not None else ""
        return None, Problem(
            f"invalid YAML: {what}{where}", file=file, line=line, hint="fix the YAML syntax at that position"
        )


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` keeps the last of duplicate keys silently; Windmill's parser refuses them."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return obj


def _duplicate_key_lines(text: str, key: str) -> tuple[int | None, int | None]:
    """The lines of the first duplicate ``key`` within one object of a JSON text. Walks parser
    events (JSON is YAML), so it is iterative and safe on any nesting; used only to report."""
    # One frame per open collection: the keys seen with their lines (None for a list), and
    # whether the next event of a mapping is a key.
    frames: list[tuple[dict[str, int] | None, list[bool]]] = []
    try:
        for event in yaml.parse(text, Loader=FlowYamlLoader):
            frame = frames[-1] if frames else None
            is_key = frame is not None and frame[0] is not None and frame[1][0]
            if frame is not None and frame[0] is not None:
                frame[1][0] = not frame[1][0]
            if isinstance(event, yaml.ScalarEvent) and is_key and frame is not None and frame[0] is not None:
                line = int(event.start_mark.line) + 1 if event.start_mark else 0
                if event.value == key and key in frame[0]:
                    return frame[0][key], line
                frame[0].setdefault(event.value, line)
            elif isinstance(event, yaml.MappingStartEvent):
                frames.append(({}, [True]))
            elif isinstance(event, yaml.SequenceStartEvent):
                frames.append((None, [False]))
            elif isinstance(event, yaml.CollectionEndEvent):
                frames.pop()  # its parent's key/value turn moved on at its start
    except yaml.YAMLError:
        pass
    return None, None


def _locate_document(path: Path) -> Path | LoadResult:
    """The document file (``flow.yaml`` inside a flow folder), or an error result."""
    path = Path(os.path.abspath(path))
    note_folder(path if path.is_dir() else path.parent)  # which flow file a folder holds matters
    if path.is_dir():
        for name in FLOW_FILE_NAMES:
            candidate = path / name
            if is_regular_file(candidate):
                return candidate
        return _error(
            path,
            "no flow.yaml or flow.json in this folder",
            "point at a git-sync flow folder (<name>.flow/ or <name>__flow/) or at a .json/.yaml file",
        )
    if not path.exists():
        return _error(path, "flow file not found", "check the path")
    if path.suffix.lower() not in DOCUMENT_SUFFIXES:
        return _error(path, f"unsupported file type {path.suffix!r}", "use a .json, .yaml or .yml file")
    return path
