"""Settings that are well-formed but mean nothing where they are. Windmill would ignore them (or
fail in a way that hides the cause); here they are load-time errors, so that nothing written in a
document is silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.locate import join_path
from airflow_openflow.spec.model import (
    BranchAll,
    FlowModule,
    ForloopFlow,
    OpenFlow,
    PathFlow,
    PathScript,
    RawScript,
    WhileloopFlow,
    all_modules,
)

Error = Callable[[str, str, str], None]  # (json path, message, hint)


def check_meaning(flow: OpenFlow) -> list[Problem]:
    file = flow.source.file
    problems: list[Problem] = []

    def error(path: str, message: str, hint: str) -> None:
        problems.append(Problem(message, file=file, json_path=path, hint=hint))

    for module in all_modules(flow):
        _module(module, error)
    preprocessor = flow.value.preprocessor_module
    if preprocessor is not None and not isinstance(preprocessor.value, RawScript | PathScript):
        error(
            join_path(preprocessor.value.json_path, "type"),
            f"the preprocessor must be a script step, not a {preprocessor.value.type}",
            "make preprocessor_module a rawscript (or a script by path) that returns the flow's inputs; "
            "put loops and branches in the flow's steps",
        )
    return problems


def _module(module: FlowModule, error: Error) -> None:
    suspend = module.suspend
    # 0 is Windmill's "suspend off" (its engine suspends only for a non-zero count); below 0 is
    # no count at all (Windmill's own type for it is unsigned).
    if suspend is not None and suspend.required_events < 0:
        error(
            join_path(suspend.json_path, "required_events"),
            f"suspend.required_events must be 1 or more (0 turns the approval off), "
            f"got {suspend.required_events}",
            "set the number of approvals the step waits for, or remove suspend",
        )
    stop_all = module.stop_after_all_iters_if
    if stop_all is not None and not isinstance(module.value, ForloopFlow | WhileloopFlow | BranchAll):
        error(
            stop_all.json_path,
            f"stop_after_all_iters_if on a {module.value.type} step means nothing: it is evaluated "
            "on the results of all iterations of a loop (or all branches of a branchall)",
            "use stop_after_if on this step",
        )
    value = module.value
    if isinstance(value, PathScript | PathFlow):
        problem = workspace_path_problem(value.path)
        if problem is not None:
            kind = "script" if isinstance(value, PathScript) else "flow"
            error(
                join_path(value.json_path, "path"),
                f"{kind} path {value.path!r} {problem}",
                f"write the {kind}'s workspace path, e.g. f/<folder>/<name>",
            )


def workspace_path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a script or flow of the workspace (``f/folder/name``), or None."""
    parts = path.strip("/").split("/")
    if not path.strip("/"):
        return "names nothing"
    if path.startswith(("/", "\\", "~")):
        return "is an absolute path"
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' part"
    return None
