"""``load_openflow_dags``: every OpenFlow document in a folder becomes a DAG in the calling DAG file.

Called at DAG-parse time, so it stays cheap: documents are parsed with libyaml's C loader, nothing
runs, and in a worker (``get_parsing_context().dag_id`` set) only the DAG being run is built.
A broken document never hides the others: it becomes a placeholder DAG with the same dag_id whose
docs and single failing task carry the error, and the error is logged (``strict=True`` raises).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from airflow_openflow.spec import OpenFlow, Problem
    from airflow_openflow.spec.parse_cache import ParseCache
    from airflow_openflow.spec.schedules import ScheduleIndex

log = logging.getLogger(__name__)


def load_openflow_dags(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    namespace: MutableMapping[str, Any] | None = None,
    *,
    strict: bool = False,
    dag_id_prefix: str = "",
    schedules: Mapping[str, Any] | None = None,
    **dag_kwargs: Any,
) -> dict[str, Any]:
    """Build one DAG per flow found under ``source`` (a folder, a flow file or git-sync flow folder,
    or a list of those) and register each in ``namespace`` (pass ``globals()`` of the DAG file).

    Returns ``{dag_id: DAG}``. ``dag_kwargs`` go to every ``DAG`` (e.g. ``max_active_runs``).
    A flow's Windmill schedule files (``<path>.schedule.yaml``) become its DAG's schedule;
    ``schedules={"<flow path>": None | "<cron>" | <timetable>}`` overrides that per flow, and a
    ``schedule`` in ``dag_kwargs`` for every flow (docs/schedules.md).
    """
    with _collector_paused():
        return _load_openflow_dags(source, namespace, strict, dag_id_prefix, schedules, dag_kwargs)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector is paused while the DAGs are loaded: nearly every object
    made is kept, and each collection pass, triggered by the allocations, walked the DAGs made so
    far for nothing (a third of a warm parse of 200 flows; docs/performance.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_openflow_dags(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    namespace: MutableMapping[str, Any] | None,
    strict: bool,
    dag_id_prefix: str,
    schedules: Mapping[str, Any] | None,
    dag_kwargs: dict[str, Any],
) -> dict[str, Any]:
    from airflow.sdk import get_parsing_context

    from airflow_openflow.spec import FlowDocumentError
    from airflow_openflow.spec.discover import scan_flows

    wanted = get_parsing_context().dag_id  # set in a worker: build only that DAG
    dag_file = namespace.get("__file__") if namespace is not None else None
    syntax = ignore_file_syntax()
    flow_paths, schedule_files = _flow_paths(source, functools.partial(scan_flows, ignore_syntax=syntax))
    flows = FlowDags(
        flow_paths,
        walked_schedule_files=schedule_files,
        dag_id_prefix=dag_id_prefix,
        schedules=schedules,
        fileloc=dag_file,
        dag_kwargs=dag_kwargs,
        ignore_syntax=syntax,
        parse_cache=configured_parse_cache(),
        # The DAG processor's parse reuses the DAGs built by earlier parses; a worker builds the
        # one DAG it runs afresh.
        reuse_dags=wanted is None,
    )
    dags: dict[str, Any] = {}
    for located in flows.located:
        path, dag_id = located.path, located.dag_id
        if wanted is not None and dag_id != wanted:
            continue
        if dag_id in dags:
            continue
        clash = flows.clash_message(dag_id)
        if clash is not None:  # none of them is picked silently: the dag_id shows the clash
            _report(clash, strict)
            dags[dag_id] = _invalid_flow_dag(dag_id, located.flow_path, path, clash, dag_file)
            if namespace is not None:
                namespace[_global_name(dag_id)] = dags[dag_id]
            continue
        try:
            dag, warnings = flows.build(located)
            for warning in warnings:
                log.warning("%s", warning.format())
        except FlowDocumentError as exc:
            if strict:
                raise
            log.error("OpenFlow document %s is invalid:\n%s", path, exc)
            dag = _invalid_flow_dag(dag_id, located.flow_path, path, str(exc), dag_file)
        except Exception as exc:  # a bug of ours must not take the other flows down with it
            if strict:
                raise
            log.exception("could not build a DAG from %s", path)
            dag = _invalid_flow_dag(dag_id, located.flow_path, path, f"{type(exc).__name__}: {exc}", dag_file)
        dags[dag_id] = dag
        if namespace is not None:
            namespace[_global_name(dag_id)] = dag
    if wanted is None:
        searched = {f.root for f in flows.located if f.found_in_root}
        _report_schedule_leftovers(
            [index for root, index in flows.indexes.items() if root in searched],
            schedules,
            {f.flow_path for f in flows.located},
            strict,
        )
    return dags


def ignore_file_syntax(*, use_airflow: bool = True) -> str:
    """Airflow's ``[core] dag_ignore_file_syntax`` (``glob`` or ``regexp``), which
    ``.airflowignore`` files under a flows folder follow. Without Airflow (not installed, or not to
    be imported: ``validate --no-build``) the ``AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX`` variable,
    else ``glob``."""
    from_env = os.environ.get("AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX", "").strip() or "glob"
    if not use_airflow:
        return from_env
    try:
        from airflow.sdk import conf
    except ImportError:
        return from_env
    return str(conf.get("core", "dag_ignore_file_syntax", fallback="glob") or "glob")


def configured_parse_cache() -> ParseCache | None:
    """``[openflow] parse_cache`` / ``parse_cache_dir`` (docs/configuration.md): the cache of flow
    load results, or None when it is turned off."""
    from airflow.sdk import conf

    from airflow_openflow.spec.parse_cache import ParseCache, default_cache_dir

    if not conf.getboolean("openflow", "parse_cache", fallback=True):
        return None
    directory = str(conf.get("openflow", "parse_cache_dir", fallback="") or "").strip()
    return ParseCache(directory or default_cache_dir())


def prepare_document(path: Path, root: Path | None) -> tuple[OpenFlow, list[Problem]]:
    """Load one flow document and prepare it for compiling (``spec.prepare_flow``: scripts by path
    inlined, sub-flows loaded, what this release runs checked). Returns the flow and every problem
    found, errors included; raises ``FlowDocumentError`` when the document itself does not load.
    No Airflow: ``airflow-openflow validate`` runs this alone where Airflow is not installed."""
    from airflow_openflow.spec import load_flow, prepare_flow

    loaded = load_flow(path, root=root)
    flow, problems = prepare_flow(loaded.flow)
    return flow, [*loaded.warnings, *problems]


class Located(NamedTuple):
    path: Path  # the flow file or git-sync flow folder
    root: Path  # the folder its workspace path (and so its dag_id) is relative to
    flow_path: str  # the workspace path, e.g. f/examples/etl
    dag_id: str
    # Found by searching ``root``, which is then its workspace; a flow named on its own gets the
    # workspace around it (spec/workspace.py).
    found_in_root: bool = True

    @property
    def workspace_root(self) -> Path | None:
        return self.root if self.found_in_root else None


class FlowDags:
    """The flows of one ``load_openflow_dags`` call (or one ``airflow-openflow validate``), and the
    one sequence that turns each into its DAG (:meth:`build`). Building one flow needs the others:
    a sub-flow that is one of them runs as a run of its own DAG, and the schedule files under a root
    are read once for all of its flows."""

    def __init__(
        self,
        flow_paths: Iterable[tuple[Path, Path, bool]],
        *,
        dag_id_prefix: str = "",
        schedules: Mapping[str, Any] | None = None,
        fileloc: str | None = None,
        dag_kwargs: Mapping[str, Any] | None = None,
        ignore_syntax: str | None = "glob",
        parse_cache: ParseCache | None = None,
        reuse_dags: bool = False,
        walked_schedule_files: Mapping[Path, list[Path]] | None = None,
    ) -> None:
        from airflow_openflow.compile import dag_id_for_path
        from airflow_openflow.spec.paths import workspace_path_for

        self.located = [
            Located(path, root, flow_path, dag_id_for_path(flow_path, prefix=dag_id_prefix), found_in_root)
            for path, root, found_in_root in flow_paths
            for flow_path in (workspace_path_for(path, root),)
        ]
        self._by_dag_id: dict[str, list[Path]] = {}
        for located in self.located:
            self._by_dag_id.setdefault(located.dag_id, []).append(located.path)
        self.schedules = schedules
        self.fileloc = fileloc
        self.dag_kwargs = dict(dag_kwargs or {})
        self.ignore_syntax = ignore_syntax
        self.parse_cache = parse_cache
        self.reuse_dags = reuse_dags and parse_cache is not None
        # the schedule files under each searched root (or around a flow named on its own), read once
        self.indexes: dict[Path, ScheduleIndex] = {}
        # the schedule files the search for flows saw under each folder it walked: not walked again
        self.walked_schedule_files = dict(walked_schedule_files or {})

    def clash_message(self, dag_id: str) -> str | None:
        """Why ``dag_id`` cannot be loaded when several documents map to it (``a.json`` + ``a.yaml``,
        ``x/y.json`` + ``x__y.json``), else None."""
        paths = self._by_dag_id.get(dag_id, [])
        if len(paths) < 2:
            return None
        listed = "\n".join(f"  - {path}" for path in paths)
        return (
            f"{len(paths)} flow documents map to the dag_id {dag_id!r}, so none of them is loaded:"
            f"\n{listed}\n"
            "Rename or remove all but one of them (a flow's dag_id comes from its path: '/' becomes '__', "
            "and the .json/.yaml/.flow suffix is dropped)."
        )

    @functools.cached_property
    def _dag_ids_by_flow(self) -> dict[Path, str]:
        ids: dict[Path, str] = {}
        for located in self.located:
            ids.setdefault(_flow_key(located.path), located.dag_id)
        return ids

    def sub_flow_dag_id(self, child: Any) -> str | None:
        """A sub-flow that is one of these flows runs as a run of its own DAG (also in a worker
        building one DAG); asked only by flows that call sub-flows."""
        return self._dag_id_of_file(child.source.file)

    def _dag_id_of_file(self, file: str | None) -> str | None:
        return self._dag_ids_by_flow.get(_flow_key(Path(file))) if file else None

    def flow_schedule(
        self, path: Path, root: Path, flow_path: str, *, found_in_root: bool = True
    ) -> tuple[Any, list[Problem]]:
        """(DagSchedule or None, problems): the DAG file's override, else the schedule files.

        A flow found by searching ``root`` takes its schedule files from all of ``root``; a flow
        named on its own (``render``/``run`` of one file) from its git-sync root
        (``spec.workspace.git_sync_root_of``), or when it has none from its own folder only, never
        from every folder under its parent."""
        from airflow_openflow.compile.schedule import dag_schedule
        from airflow_openflow.spec.schedules import index_schedules, schedule_folder

        schedules = self.schedules
        overridden = schedules is not None and flow_path in schedules
        if "schedule" in self.dag_kwargs and not overridden:
            return None, []  # the DAG keyword for every flow wins over the files
        root, recursive = schedule_folder(path, root, found_in_root=found_in_root)
        if root not in self.indexes:
            self.indexes[root] = index_schedules(
                root,
                recursive=recursive,
                ignore_syntax=self.ignore_syntax,
                files=self.walked_schedule_files.get(root) if recursive else None,
            )
        files = self.indexes[root].for_flow(path)
        if schedules is not None and overridden:
            return dag_schedule(files, override=schedules[flow_path], source=f"schedules[{flow_path!r}]")
        return dag_schedule(files)

    def build(self, located: Located) -> tuple[Any, list[Problem]]:
        """The DAG of one of the ``located`` flows and its warnings; raises ``FlowDocumentError``
        with every error, or whatever building the DAG raised."""
        from airflow_openflow.compile import build_dag
        from airflow_openflow.kept_dags import KeptDag
        from airflow_openflow.spec import FlowDocumentError

        path, root, flow_path, dag_id, found_in_root = located
        root_of_workspace = located.workspace_root
        prepare = functools.partial(prepare_document, path, root_of_workspace)
        cache = self.parse_cache
        loaded = None if cache is None else cache.lookup(path, root_of_workspace, prepare)
        schedule, schedule_problems = self.flow_schedule(path, root, flow_path, found_in_root=found_in_root)
        dag_kwargs = self.dag_kwargs
        if schedule is not None:  # the flow's own schedule: the DAG file's for every flow is not used
            dag_kwargs = {k: v for k, v in dag_kwargs.items() if k != "schedule"}
        kept = None
        if self.reuse_dags and cache is not None and loaded is not None and loaded.source is not None:
            kept = KeptDag.name_for(dag_id, flow_path, self.fileloc, schedule, schedule_problems, dag_kwargs)
            if kept is not None and loaded.hit:
                reused = kept.read(cache, loaded.source, self._dag_id_of_file)
                if reused is not None:
                    return reused
        flow, problems = loaded.prepared() if loaded is not None else prepare()
        problems = [*problems, *schedule_problems]
        errors = [p for p in problems if p.severity == "error"]
        warnings = [p for p in problems if p.severity != "error"]
        if errors:
            raise FlowDocumentError(errors, warnings)
        sub_flows: dict[str | None, str | None] = {}

        def sub_flow_dag_id(child: Any) -> str | None:
            sub_flows[child.source.file] = self._dag_id_of_file(child.source.file)
            return sub_flows[child.source.file]

        dag = build_dag(
            flow,
            dag_id=dag_id,
            fileloc=self.fileloc,
            warnings=warnings,
            sub_flow_dag_id=sub_flow_dag_id,
            flow_path=flow_path,
            flow_schedule=schedule,
            **dag_kwargs,
        )
        if kept is not None and cache is not None and loaded is not None and loaded.source is not None:
            kept.write(cache, loaded.source, dag, warnings, sub_flows)
        return dag, warnings


def _report_schedule_leftovers(
    indexes: Iterable[Any], schedules: Mapping[str, Any] | None, flow_paths: set[str], strict: bool
) -> None:
    """Broken schedule files that name no flow, and ``schedules`` keys that match no flow."""
    for index in indexes:
        for schedule in index.orphans:
            _report(
                "invalid schedule file (no flow found for it):\n"
                + "\n".join(p.format() for p in schedule.errors),
                strict,
            )
    for key in sorted(set(schedules or ()) - flow_paths):
        _report(
            f"load_openflow_dags(schedules=...): no flow has the path {key!r} "
            f"(flow paths: {sorted(flow_paths)})",
            strict,
        )


def _flow_key(path: Path) -> Path:
    """One key per flow, whichever of its paths is given (``x.flow/`` or ``x.flow/flow.yaml``)."""
    from airflow_openflow.spec.paths import flow_folder_of

    return (flow_folder_of(path) or path).resolve()


def _flow_paths(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], scan: Any
) -> tuple[list[tuple[Path, Path, bool]], dict[Path, list[Path]]]:
    """(flow path, root, found in root) triples (see :class:`Located`), and the schedule files the
    walk of each searched folder saw (``scan`` gives a ``spec.discover.Discovery``)."""
    from airflow_openflow.spec.paths import flow_folder_of
    from airflow_openflow.spec.workspace import repository_root_within

    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    found: list[tuple[Path, Path, bool]] = []
    schedule_files: dict[Path, list[Path]] = {}
    for item in sources:
        path = Path(item).expanduser().resolve()
        if path.is_dir() and flow_folder_of(path) is None:
            discovery = scan(path)
            schedule_files[path] = discovery.schedule_files
            # A repository kept in a sub-folder (its own wmill.yaml) is the workspace of its flows.
            found.extend((doc, repository_root_within(doc, path), True) for doc in discovery.flows)
        else:
            folder = flow_folder_of(path)
            found.append((path, (folder or path).parent, False))
    return found, schedule_files


def _invalid_flow_dag(dag_id: str, flow_path: str, path: Path, error_text: str, dag_file: str | None) -> Any:
    from airflow.sdk import DAG

    from airflow_openflow.operators.invalid import InvalidFlowOperator

    doc = (
        f"# Invalid OpenFlow document\n\n`{path}` could not be loaded:\n\n```\n{error_text}\n```\n\n"
        "Fix the document; the DAG is rebuilt on the next parse. Other flows are not affected."
    )
    dag = DAG(
        dag_id=dag_id,
        dag_display_name=f"{flow_path or dag_id} (invalid)",
        schedule=None,
        doc_md=doc,
        tags=["openflow", "openflow-invalid"],
        description=f"INVALID: {error_text.splitlines()[0][:200] if error_text else path}",
    )
    if dag_file:
        dag.fileloc = dag_file
    with dag:
        InvalidFlowOperator(
            task_id="invalid_flow_document",
            task_display_name="Invalid flow document",
            error_text=error_text,
            doc_md=doc,
        )
    return dag


def _global_name(dag_id: str) -> str:
    return "openflow_dag__" + "".join(c if c.isalnum() else "_" for c in dag_id)


def _report(message: str, strict: bool) -> None:
    if strict:
        raise ValueError(message)
    log.error("%s", message)
