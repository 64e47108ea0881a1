"""Sub-flows (``type: flow``): the referenced flow documents, found in the git-sync layout.

A flow ``f/folder/name`` lives in ``f/folder/name.flow/flow.yaml`` (or ``name__flow/``, or a
single ``name.flow.json`` / ``name.json`` / ``name.yaml`` file) under the repository root, looked
up like workspace scripts (spec/scripts.py). Children are loaded recursively; a flow that calls
itself, directly or not, is an error.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from airflow_openflow.spec.errors import FlowDocumentError, Problem
from airflow_openflow.spec.meaning_check import workspace_path_problem
from airflow_openflow.spec.model import FlowModule, OpenFlow, PathFlow, all_modules, map_steps
from airflow_openflow.spec.scripts import script_roots, with_scripts_inlined

_CANDIDATES = (
    "{p}.flow/flow.yaml",
    "{p}.flow/flow.yml",
    "{p}.flow/flow.json",
    "{p}__flow/flow.yaml",
    "{p}__flow/flow.yml",
    "{p}__flow/flow.json",
    "{p}.flow.json",
    "{p}.flow.yaml",
    "{p}.json",
    "{p}.yaml",
    "{p}.yml",
)


def find_flow(workspace_path: str, flow: OpenFlow) -> Path | None:
    if workspace_path_problem(workspace_path) is not None:
        return None  # the loader reports it
    relative = workspace_path.strip("/")
    for root in script_roots(flow):
        for pattern in _CANDIDATES:
            candidate = root / pattern.format(p=relative)
            if candidate.is_file():
                return candidate
    return None


def with_subflows_resolved(flow: OpenFlow) -> tuple[OpenFlow, list[Problem]]:
    """The flow with every ``type: flow`` step's ``resolved`` set to the loaded child flow (its
    own sub-flows resolved too), and the problems found on the way."""
    return _resolve(flow, stack=(_identity(flow),))


def _identity(flow: OpenFlow) -> str:
    return str(Path(flow.source.file).resolve()) if flow.source.file else f"<{flow.content_hash}>"


def _resolve(flow: OpenFlow, stack: tuple[str, ...]) -> tuple[OpenFlow, list[Problem]]:
    from airflow_openflow.spec.loader import load_flow

    if not any(isinstance(m.value, PathFlow) for m in all_modules(flow)):
        return flow, []
    problems: list[Problem] = []
    file = flow.source.file

    def child_of(value: PathFlow) -> OpenFlow | None:
        where: dict[str, Any] = {"file": file, "json_path": f"{value.json_path}.path"}
        found = find_flow(value.path, flow)
        if found is None:
            problems.append(
                Problem(
                    f"sub-flow {value.path!r} not found in the repository",
                    hint=f"add {value.path}.flow/flow.yaml (Windmill's git-sync layout) or fix the path",
                    **where,
                )
            )
            return None
        if str(found.resolve()) in stack:
            problems.append(
                Problem(
                    f"sub-flow {value.path!r} calls itself "
                    f"(through {' -> '.join(Path(s).parent.name for s in stack)})",
                    hint="a flow cannot run itself as a sub-flow",
                    **where,
                )
            )
            return None
        root = flow.source.root
        try:
            child = load_flow(found, root=root).flow
        except FlowDocumentError as exc:
            problems.append(
                Problem(
                    f"sub-flow {value.path!r} ({found}) is invalid: {exc.problems[0].format()}",
                    hint="fix the sub-flow document",
                    **where,
                )
            )
            return None
        child, inner = _resolve(with_scripts_inlined(child), (*stack, str(found.resolve())))
        problems.extend(inner)
        return child

    def resolve(module: FlowModule) -> FlowModule:
        if not isinstance(module.value, PathFlow) or module.value.resolved is not None:
            return module  # not a sub-flow, or loaded already
        return dataclasses.replace(
            module, value=dataclasses.replace(module.value, resolved=child_of(module.value))
        )

    return map_steps(flow, resolve), problems
