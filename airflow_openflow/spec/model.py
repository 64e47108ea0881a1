"""Typed model of an OpenFlow document (Windmill's ``openflow.openapi.yaml``).

Every module kind and every field of the schema has a place here, including the ones that a later
release executes: the compiler decides what it supports, the model only describes the document.
Fields the schema does not know are kept in ``extra`` (and reported as warnings by the loader).

Each node carries ``json_path``: where it sits in the document (``value.modules[2].value``), so that
errors raised long after loading can still point at the source.

This module imports neither Airflow nor a JavaScript engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

TransformKind = Literal["static", "javascript", "ai"]


@dataclass(frozen=True, slots=True)
class InputTransform:
    """An argument source: a JSON literal (``static``) or a JavaScript expression."""

    kind: TransformKind
    value: Any = None  # for ``static``
    expr: str | None = None  # for ``javascript``
    json_path: str = ""


@dataclass(frozen=True, slots=True)
class StopAfterIf:
    expr: str
    skip_if_stopped: bool = False
    error_message: str | None = None
    error_include_result: bool = False
    json_path: str = ""


@dataclass(frozen=True, slots=True)
class SkipIf:
    expr: str
    json_path: str = ""


@dataclass(frozen=True, slots=True)
class Mock:
    enabled: bool = False
    return_value: Any = None
    json_path: str = ""


@dataclass(frozen=True, slots=True)
class ConstantRetry:
    attempts: int = 0
    seconds: float = 0


@dataclass(frozen=True, slots=True)
class ExponentialRetry:
    attempts: int = 0
    multiplier: float = 1
    seconds: float = 1
    random_factor: float | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    constant: ConstantRetry | None = None
    exponential: ExponentialRetry | None = None
    retry_if: str | None = None  # ``retry_if.expr``
    json_path: str = ""

    @property
    def max_retries(self) -> int:
        return (self.constant.attempts if self.constant else 0) + (
            self.exponential.attempts if self.exponential else 0
        )


@dataclass(frozen=True, slots=True)
class Suspend:
    required_events: int = 1
    timeout: int | None = None
    resume_form: dict[str, Any] | None = None  # ``{"schema": {...}}``
    user_auth_required: bool = False
    user_groups_required: InputTransform | None = None
    self_approval_disabled: bool = False
    hide_cancel: bool = False
    continue_on_disapprove_timeout: bool = False
    json_path: str = ""


# ---------------------------------------------------------------------------------------------
# Module values (the ``value`` of a step), one class per ``type``.


@dataclass(frozen=True, slots=True)
class RawScript:
    language: str
    content: str
    input_transforms: dict[str, InputTransform] = field(default_factory=dict)
    lock: str | None = None
    path: str | None = None
    tag: str | None = None
    concurrent_limit: float | None = None
    concurrency_time_window_s: float | None = None
    custom_concurrency_key: str | None = None
    is_trigger: bool = False
    assets: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = ""
    type: Literal["rawscript"] = "rawscript"


@dataclass(frozen=True, slots=True)
class PathScript:
    path: str
    input_transforms: dict[str, InputTransform] = field(default_factory=dict)
    hash: str | None = None
    tag_override: str | None = None
    is_trigger: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = ""
    type: Literal["script"] = "script"
    #: a hub script (``hub/...``) with no vendored copy runs from the hub (runtime/hub.py): the
    #: flow's workspace root, where that copy was looked for (set by ``spec.scripts``, not part of
    #: the document)
    workspace_root: str | None = None


@dataclass(frozen=True, slots=True)
class PathFlow:
    path: str
    input_transforms: dict[str, InputTransform] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = ""
    type: Literal["flow"] = "flow"
    #: the referenced flow, loaded from the repository by ``spec.subflows`` (not part of the document)
    resolved: OpenFlow | None = None


@dataclass(frozen=True, slots=True)
class ForloopFlow:
    modules: list[FlowModule]
    iterator: InputTransform
    skip_failures: bool = False  # engine reads an absent flag as false (spec 4.4)
    parallel: bool = False
    parallelism: InputTransform | None = None
    squash: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = ""
    type: Literal["forloopflow"] = "forloopflow"


@dataclass(frozen=True, slots=True)
class WhileloopFlow:
    modules: list[FlowModule]
    skip_failures: bool = False
    parallel: bool = False
    parallelism: InputTransform | None = None
    squash: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = ""
    type: Literal["whileloopflow"] = "whileloopflow"


@dataclass(frozen=True, slots=True)
class Branch:
    """A branch of a branchone (``expr`` set) or of a branchall (``skip_failure`` meaningful)."""

    modules: list[FlowModule]
    expr: str | None = None
    summary: str | None = None
    skip_failure: bool = False  # engine reads an absent flag as false (spec 4.8)
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = ""


@dataclass(frozen=True, slots=True)
class BranchOne:
    branches: list[Branch]
    default: list[FlowModule]
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = ""
    type: Literal["branchone"] = "branchone"


@dataclass(frozen=True, slots=True)
class BranchAll:
    branches: list[Branch]
    parallel: bool = True  # absent means parallel (spec 4.8)
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = ""
    type: Literal["branchall"] = "branchall"


@dataclass(frozen=True, slots=True)
class Identity:
    flow: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = ""
    type: Literal["identity"] = "identity"


@dataclass(frozen=True, slots=True)
class AiAgent:
    input_transforms: dict[str, InputTransform] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)  # kept as raw JSON
    parallel: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = ""
    type: Literal["aiagent"] = "aiagent"


ModuleValue = (
    RawScript
    | PathScript
    | PathFlow
    | ForloopFlow
    | WhileloopFlow
    | BranchOne
    | BranchAll
    | Identity
    | AiAgent
)

MODULE_TYPES: tuple[str, ...] = (
    "rawscript",
    "script",
    "flow",
    "forloopflow",
    "whileloopflow",
    "branchone",
    "branchall",
    "identity",
    "aiagent",
)


@dataclass(frozen=True, slots=True)
class FlowModule:
    """One step of a flow."""

    id: str
    value: ModuleValue
    summary: str | None = None
    stop_after_if: StopAfterIf | None = None
    stop_after_all_iters_if: StopAfterIf | None = None
    skip_if: SkipIf | None = None
    sleep: InputTransform | None = None
    cache_ttl: float | None = None
    timeout: InputTransform | None = None
    delete_after_use: bool = False
    mock: Mock | None = None
    suspend: Suspend | None = None
    priority: float | None = None
    continue_on_error: bool = False
    retry: Retry | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = ""


@dataclass(frozen=True, slots=True)
class FlowValue:
    modules: list[FlowModule]
    failure_module: FlowModule | None = None
    preprocessor_module: FlowModule | None = None
    same_worker: bool = False
    concurrent_limit: float | None = None
    concurrency_key: str | None = None
    concurrency_time_window_s: float | None = None
    debounce_delay_s: float | None = None
    debounce_key: str | None = None
    skip_expr: str | None = None
    cache_ttl: float | None = None
    flow_env: dict[str, Any] = field(default_factory=dict)
    priority: float | None = None
    early_return: str | None = None
    chat_input_enabled: bool = False
    notes: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: str = "value"


@dataclass(frozen=True, slots=True)
class FlowSource:
    """Where a document came from: the file, its format and the flow's workspace path."""

    file: str | None  # the file holding the document (``flow.yaml``, ``x.json``); None for a dict
    format: Literal["json", "yaml", "dict"]
    workspace_path: str | None = None  # e.g. ``f/examples/etl`` for git-sync folders
    root: str | None = None  # the folder the flow was discovered under (for stable dag ids)
    # The real path of the folder every file the document names must be in (spec/workspace.py).
    workspace_root: str | None = None


@dataclass(frozen=True, slots=True)
class OpenFlow:
    summary: str
    value: FlowValue
    description: str | None = None
    schema: dict[str, Any] | None = None
    source: FlowSource = field(default_factory=lambda: FlowSource(file=None, format="dict"))
    extra: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""  # sha256 of the raw bytes (plus inline files) the model was built from


def asks_approval(module: FlowModule) -> bool:
    """Whether the step has a ``suspend`` that waits for at least one approval (``required_events:
    0`` turns it off, as in Windmill's engine)."""
    return module.suspend is not None and module.suspend.required_events > 0


def iter_modules(modules: list[FlowModule]) -> list[FlowModule]:
    """All modules of a list, depth-first, including those nested in loops and branches."""
    out: list[FlowModule] = []
    for module in modules:
        out.append(module)
        value = module.value
        if isinstance(value, (ForloopFlow, WhileloopFlow)):
            out.extend(iter_modules(value.modules))
        elif isinstance(value, BranchOne):
            for branch in value.branches:
                out.extend(iter_modules(branch.modules))
            out.extend(iter_modules(value.default))
        elif isinstance(value, BranchAll):
            for branch in value.branches:
                out.extend(iter_modules(branch.modules))
    return out


def all_modules(flow: OpenFlow) -> list[FlowModule]:
    """Every module of the flow, the failure and preprocessor modules included."""
    out = iter_modules(flow.value.modules)
    for special in (flow.value.failure_module, flow.value.preprocessor_module):
        if special is not None:
            out.extend(iter_modules([special]))
    return out


def map_steps(flow: OpenFlow, change: Callable[[FlowModule], FlowModule]) -> OpenFlow:
    """A copy of the flow with ``change`` applied to every module, nested ones included (children
    first); containers are rebuilt around their changed children."""

    def one(module: FlowModule) -> FlowModule:
        value = module.value
        new_value: Any = value
        if isinstance(value, (ForloopFlow, WhileloopFlow)):
            new_value = dataclasses.replace(value, modules=many(value.modules))
        elif isinstance(value, BranchOne):
            branches = [dataclasses.replace(b, modules=many(b.modules)) for b in value.branches]
            new_value = dataclasses.replace(value, branches=branches, default=many(value.default))
        elif isinstance(value, BranchAll):
            branches = [dataclasses.replace(b, modules=many(b.modules)) for b in value.branches]
            new_value = dataclasses.replace(value, branches=branches)
        return change(module if new_value is value else dataclasses.replace(module, value=new_value))

    def many(modules: list[FlowModule]) -> list[FlowModule]:
        return [one(m) for m in modules]

    value = flow.value
    specials: dict[str, Any] = {
        name: one(getattr(value, name))
        for name in ("failure_module", "preprocessor_module")
        if getattr(value, name) is not None
    }
    return dataclasses.replace(
        flow, value=dataclasses.replace(value, modules=many(value.modules), **specials)
    )
