"""``airflow-openflow check FOLDER``: what of a Windmill git-sync workspace runs here.

Reads every flow under the folder (``spec.discover.scan_flows``) as the DAG file does (load,
prepare: scripts by path, sub-flows; what this release runs; the flow's schedule files), and
reports per flow whether it loads and runs here and, when not, each blocker with its file:line;
also the Airflow Variables and Connections its steps read (``$var:``/``$res:``, ``variable()``/
``resource()``), and whether the workspace has their Windmill files.
Hub scripts that are not vendored are notes (the step downloads them when it runs). Schedule files
that name no flow are reported on their own. The spec layer only: no Airflow import, and no DAG is
built (``airflow-openflow validate`` builds them).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_openflow.spec.errors import Problem

#: Blocker kinds, in the order the totals list them.
KINDS = (
    "invalid document",
    "language not supported",
    "runtime not installed",
    "unsupported module kind",
    "approval in an unsupported place",
    "missing script",
    "sub-flow",
    "schedule",
    "other",
)


@dataclass
class FlowReport:
    path: str  # the flow's Windmill path, f/folder/name
    file: str  # its document, relative to the folder
    blockers: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # hub scripts downloaded when the step runs
    warnings: int = 0  # other warnings (settings ignored...): `validate` lists them
    #: what the flow reads from Airflow: "Connection f__team__db" / "Variable f__team__key", with
    #: whether the workspace has the Windmill resource / variable file of that path
    needs: list[str] = field(default_factory=list)

    @property
    def runs(self) -> bool:
        return not self.blockers


@dataclass
class Report:
    folder: str
    flows: list[FlowReport] = field(default_factory=list)
    schedule_files: list[Problem] = field(default_factory=list)  # broken ones naming no flow

    @property
    def ok(self) -> bool:
        return all(flow.runs for flow in self.flows) and not self.schedule_files

    def blocker_counts(self) -> dict[str, int]:
        counts = Counter(blocker_kind(p) for flow in self.flows for p in flow.blockers)
        return {kind: counts[kind] for kind in KINDS if counts[kind]}


def blocker_kind(problem: Problem) -> str:
    """What kind of blocker an error is (from the words of spec/support.py and the loader)."""
    message, path = problem.message, problem.json_path
    if message.startswith("sub-flow "):
        return "sub-flow"
    if problem.file and ".schedule." in Path(problem.file).name:
        return "schedule"
    if "is not supported; supported:" in message:
        return "language not supported"
    if "is not on the PATH" in message or "which is not installed on this machine" in message:
        return "runtime not installed"
    if "an approval step" in message:
        return "approval in an unsupported place"
    if message.startswith(("not supported: AI agent", "not supported yet:")) or path.endswith(".type"):
        return "unsupported module kind" if "not supported" in message else "invalid document"
    if message.startswith("script ") and ("not found" in message or "cannot be read" in message):
        return "missing script"
    if message.startswith("not supported"):
        return "other"
    return "invalid document"


def build_report(folder: Path, *, ignore_syntax: str | None = "glob") -> Report:
    from airflow_openflow.dag_factory import prepare_document
    from airflow_openflow.spec.discover import scan_flows
    from airflow_openflow.spec.errors import FlowDocumentError
    from airflow_openflow.spec.paths import workspace_path_for
    from airflow_openflow.spec.schedules import choose_schedule, index_schedules, orphan_problems
    from airflow_openflow.spec.workspace import repository_root_within

    root = folder.resolve()
    report = Report(str(folder))
    schedules = index_schedules(root, recursive=True, ignore_syntax=ignore_syntax)
    report.schedule_files = list(orphan_problems(schedules))
    for document in scan_flows(root, ignore_syntax=ignore_syntax).flows:
        # a git-sync repository kept in a sub-folder (its own wmill.yaml) is its flows' workspace
        workspace = repository_root_within(document, root)
        flow_report = FlowReport(workspace_path_for(document, workspace), _relative(document, root))
        problems: list[Problem]
        try:
            flow, problems = prepare_document(document, workspace)
            problems = [*problems, *_hub_notes(flow)]
            flow_report.needs = _needs(flow, workspace)
        except FlowDocumentError as exc:
            problems = [*exc.problems, *exc.warnings]
        except Exception as exc:  # one document that cannot be checked is one blocker
            problems = [
                Problem(f"the flow cannot be checked: {type(exc).__name__}: {exc}", file=str(document))
            ]
        problems.extend(choose_schedule(schedules.for_flow(document))[1])
        for problem in problems:
            if problem.severity == "error":
                flow_report.blockers.append(problem)
            elif problem.hint == _HUB_HINT:
                flow_report.notes.append(problem)
            else:
                flow_report.warnings += 1
        report.flows.append(flow_report)
    return report


_HUB_HINT = "vendor it with `airflow-openflow hub pull` for workers without internet (docs/languages.md)"


def _hub_notes(flow: Any) -> list[Problem]:
    """A note per step that runs a hub script with no vendored copy (after ``prepare_flow``, a
    script by path still a ``PathScript`` is such a one)."""
    from airflow_openflow.spec.hub import is_hub_path
    from airflow_openflow.spec.locate import with_lines_from_file
    from airflow_openflow.spec.model import PathScript, iter_modules

    value = flow.value
    modules = [*value.modules, *(m for m in (value.failure_module, value.preprocessor_module) if m)]
    notes = [
        Problem(
            f"hub script {module.value.path!r} is not vendored: the step downloads it from "
            "[openflow] hub_url when it runs",
            file=flow.source.file,
            json_path=f"{module.value.json_path}.path" if module.value.json_path else "",
            hint=_HUB_HINT,
            severity="warning",
        )
        for module in iter_modules(modules)
        if isinstance(module.value, PathScript) and is_hub_path(module.value.path)
    ]
    return with_lines_from_file(notes, flow.source.file)


_REFERENCE = re.compile(r"""\b(variable|resource)\(\s*["'`]([^"'`]+)["'`]""")


def _needs(flow: Any, root: Path) -> list[str]:
    """The Airflow Variables and Connections the flow's steps read: static ``$var:`` / ``$res:``
    arguments and ``variable("...")`` / ``resource("...")`` in expressions (docs/mapping.md,
    Variables and resources), each with whether the workspace holds its Windmill file."""
    from airflow_openflow.spec.model import iter_modules

    value = flow.value
    modules = [*value.modules, *(m for m in (value.failure_module, value.preprocessor_module) if m)]
    found: dict[tuple[str, str], None] = {}
    for module in iter_modules(modules):
        for transform in (getattr(module.value, "input_transforms", None) or {}).values():
            static = transform.value if transform.kind == "static" else None
            if isinstance(static, str) and static.startswith(("$var:", "$res:")):
                kind = "variable" if static.startswith("$var:") else "resource"
                found[kind, static[5:]] = None
            for kind, path in _REFERENCE.findall(transform.expr or ""):
                found[kind, path] = None
    needs = []
    for kind, path in found:
        key = path.strip("/").replace("/", "__")
        airflow = "Variable" if kind == "variable" else "Connection"
        files = [root / f"{path.strip('/')}.{kind}{suffix}" for suffix in (".yaml", ".yml", ".json")]
        there = "in the workspace" if any(f.is_file() for f in files) else "not in the workspace"
        needs.append(f"{airflow} {key} (Windmill {kind} {path}, {there})")
    return needs


def _relative(path: Path | str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)


def _where(problem: Problem, root: Path) -> str:
    where = _relative(problem.file, root) if problem.file else "?"
    if problem.line is not None:
        where += f":{problem.line}"
    return where


def _problem_json(problem: Problem, root: Path, *, kind: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind} if kind else {}
    out.update(
        file=_relative(problem.file, root) if problem.file else None,
        line=problem.line,
        json_path=problem.json_path or None,
        message=problem.message,
        hint=problem.hint,
    )
    return out


def to_json(report: Report) -> str:
    root = Path(report.folder).resolve()
    flows = [
        {
            "path": flow.path,
            "file": flow.file,
            "runs": flow.runs,
            "blockers": [_problem_json(p, root, kind=blocker_kind(p)) for p in flow.blockers],
            "notes": [_problem_json(p, root) for p in flow.notes],
            "warnings": flow.warnings,
            "needs": flow.needs,
        }
        for flow in report.flows
    ]
    return json.dumps(
        {
            "folder": report.folder,
            "flows": flows,
            "schedule_files": [_problem_json(p, root, kind="schedule") for p in report.schedule_files],
            "totals": _totals(report),
        },
        indent=2,
    )


def _totals(report: Report) -> dict[str, Any]:
    run = sum(flow.runs for flow in report.flows)
    return {
        "flows": len(report.flows),
        "run": run,
        "blocked": len(report.flows) - run,
        "blockers": report.blocker_counts(),
        "hub_scripts_not_vendored": sum(len(flow.notes) for flow in report.flows),
        "broken_schedule_files": len({p.file for p in report.schedule_files}),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    root = Path(report.folder).resolve()
    lines = [
        f"# Migration report: {report.folder}",
        "",
        "| flow | file | runs here | blockers | notes | needs in Airflow |",
        "|---|---|---|---|---|---|",
    ]
    for flow in report.flows:
        blockers = "<br>".join(
            _cell(f"{blocker_kind(p)}: `{_where(p, root)}` {p.message}") for p in flow.blockers
        )
        notes = "<br>".join(_cell(f"`{_where(p, root)}` {p.message}") for p in flow.notes)
        needs = "<br>".join(_cell(need) for need in flow.needs)
        lines.append(
            f"| {_cell(flow.path)} | {_cell(flow.file)} | {'yes' if flow.runs else '**no**'} "
            f"| {blockers} | {notes} | {needs} |"
        )
    if report.schedule_files:
        lines += ["", "Schedule files that name no flow and cannot be read:", ""]
        lines += [f"- `{_where(p, root)}` {_cell(p.message)}" for p in report.schedule_files]
    totals = _totals(report)
    lines += [
        "",
        f"**Totals**: {totals['flows']} flows, {totals['run']} run here, {totals['blocked']} blocked.",
    ]
    if totals["blockers"]:
        lines.append(
            "Blockers: " + ", ".join(f"{kind} {count}" for kind, count in totals["blockers"].items()) + "."
        )
    if totals["hub_scripts_not_vendored"]:
        lines.append(
            f"Hub scripts not vendored (downloaded when the step runs): {totals['hub_scripts_not_vendored']}."
        )
    if totals["broken_schedule_files"]:
        lines.append(f"Broken schedule files naming no flow: {totals['broken_schedule_files']}.")
    warnings = sum(flow.warnings for flow in report.flows)
    if warnings:
        lines.append(
            f"Other warnings (settings ignored here...): {warnings}; `airflow-openflow validate` lists them."
        )
    return "\n".join(lines)
