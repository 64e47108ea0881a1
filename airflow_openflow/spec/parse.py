"""Raw JSON data (already parsed) -> typed model, collecting every problem on the way.

The parser never stops at the first problem: a field with a wrong type is reported and replaced by
its default so that the rest of the document is still checked. When any error was found the model
is discarded (``ParseResult.flow`` is None) and the caller raises with all of them.

Problems are created without line numbers; the loader adds them afterwards from ``json_path``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.inline import InlineFiles, InlineKind, inline_name, is_inline_ref
from airflow_openflow.spec.locate import join_path
from airflow_openflow.spec.model import (
    MODULE_TYPES,
    AiAgent,
    Branch,
    BranchAll,
    BranchOne,
    FlowModule,
    FlowSource,
    FlowValue,
    ForloopFlow,
    Identity,
    InputTransform,
    ModuleValue,
    OpenFlow,
    PathFlow,
    PathScript,
    RawScript,
    WhileloopFlow,
)
from airflow_openflow.spec.parse_reader import TYPE_HINTS, FieldReader, ParseContext, json_type
from airflow_openflow.spec.parse_settings import (
    read_mock,
    read_optional_transform,
    read_retry,
    read_skip_if,
    read_stop,
    read_suspend,
    read_transform,
    read_transforms,
)

Role = Literal["step", "failure", "preprocessor"]

# Step ids become Airflow task ids (no dots: Airflow uses them for task-group prefixes).
STEP_ID_RE = re.compile(r"[A-Za-z0-9_-]+\Z")
STEP_ID_MAX = 200

# Top-level keys of a stored/exported flow that are deployment settings or bookkeeping, not part of
# the OpenFlow schema (spec 1.1). Kept in ``OpenFlow.extra`` without an "unknown field" warning.
DEPLOYMENT_KEYS = frozenset(
    {
        "path",
        "tag",
        "ws_error_handler_muted",
        "dedicated_worker",
        "timeout",
        "visible_to_runner_only",
        "on_behalf_of_email",
        "priority",
        "draft_only",
        "edited_by",
        "edited_at",
        "archived",
        "extra_perms",
        "workspace_id",
        "starred",
        "has_draft",
    }
)


@dataclass
class ParseResult:
    flow: OpenFlow | None
    errors: list[Problem]
    warnings: list[Problem]


# ---------------------------------------------------------------------------------------------
# Steps


def _check_id(ctx: ParseContext, obj: FieldReader, *, role: Role) -> str | None:
    raw = obj.raw("id")
    path = obj.at("id")
    if raw is None:
        ctx.error(path, "missing required field 'id'", "give the step a unique id, e.g. id: a")
        return None
    if not isinstance(raw, str):
        ctx.error(path, f"step id must be a string, got {json_type(raw)}", "quote the id in YAML")
        return None
    if not raw:
        ctx.error(path, "step id is empty", "give the step a unique id, e.g. id: a")
        return None
    if not STEP_ID_RE.match(raw) or len(raw) > STEP_ID_MAX:
        ctx.error(
            path,
            f"step id {raw!r} cannot be used as an Airflow task id",
            f"use only letters, digits, '_' and '-', at most {STEP_ID_MAX} characters",
        )
    if raw == "Input":
        ctx.error(path, "step id 'Input' is reserved", "rename the step")
    elif raw == "failure" and role != "failure":
        ctx.error(path, "step id 'failure' is reserved for failure_module", "rename the step")
    elif raw == "preprocessor" and role != "preprocessor":
        ctx.error(path, "step id 'preprocessor' is reserved for preprocessor_module", "rename the step")
    first = ctx.ids.get(raw)
    if first is not None:
        ctx.error(
            path,
            f"duplicate step id {raw!r}: already used by the step at {first}",
            "step ids must be unique in the whole flow, nested steps included: rename this one",
        )
    else:
        ctx.ids[raw] = obj.path
    return raw


def _modules(ctx: ParseContext, data: list[Any] | None, path: str) -> list[FlowModule]:
    out: list[FlowModule] = []
    for index, item in enumerate(data or []):
        module = _module(ctx, item, join_path(path, index), role="step")
        if module is not None:
            out.append(module)
    return out


def _module(ctx: ParseContext, data: Any, path: str, *, role: Role) -> FlowModule | None:
    if not isinstance(data, dict):
        ctx.error(path, f"a step must be a mapping, got {json_type(data)}", "write {id: ..., value: {...}}")
        return None
    obj = FieldReader(ctx, data, path)
    module_id = _check_id(ctx, obj, role=role)
    legacy = obj.raw("input_transforms")  # legacy position, sibling of ``value`` (spec 3.8)
    value = _value(ctx, obj, module_id=module_id, legacy=legacy)
    module = FlowModule(
        id=module_id or "",
        value=value if value is not None else Identity(json_path=obj.at("value")),
        summary=obj.string("summary"),
        stop_after_if=read_stop(ctx, obj, "stop_after_if"),
        stop_after_all_iters_if=read_stop(ctx, obj, "stop_after_all_iters_if"),
        skip_if=read_skip_if(ctx, obj),
        sleep=read_optional_transform(ctx, obj, "sleep"),
        cache_ttl=obj.number("cache_ttl"),
        timeout=read_optional_transform(ctx, obj, "timeout"),
        delete_after_use=obj.boolean("delete_after_use"),
        mock=read_mock(ctx, obj),
        suspend=read_suspend(ctx, obj),
        priority=obj.number("priority"),
        continue_on_error=obj.boolean("continue_on_error"),
        retry=read_retry(ctx, obj),
        extra=obj.extra(),
        json_path=path,
    )
    return module if module_id is not None and value is not None else None


def _value(
    ctx: ParseContext, module: FieldReader, *, module_id: str | None, legacy: Any
) -> ModuleValue | None:
    path = module.at("value")
    data = module.raw("value")
    if data is None:
        ctx.error(path, "missing required field 'value'", "add value: {type: rawscript, ...}")
        return None
    if not isinstance(data, dict):
        ctx.error(path, f"'value' must be a mapping, got {json_type(data)}", TYPE_HINTS["a mapping"])
        return None
    obj = FieldReader(ctx, data, path)
    kind = obj.raw("type")
    known = ", ".join(MODULE_TYPES)
    if kind is None:
        ctx.error(obj.at("type"), f"missing required field 'type' (known types: {known})", "add type: ...")
        return None
    if kind not in MODULE_TYPES:
        ctx.error(obj.at("type"), f"unknown step type {kind!r} (known types: {known})", "fix the type")
        return None
    takes_args = kind in ("rawscript", "script", "flow", "aiagent")
    transforms: dict[str, InputTransform] = {}
    if takes_args:
        transforms = _step_transforms(ctx, obj, module, legacy)
    elif legacy is not None:
        ctx.warn(
            module.at("input_transforms"), f"'input_transforms' is ignored on a {kind} step", "remove it"
        )
    return _BUILDERS[kind](ctx, obj, module_id, transforms)


def _step_transforms(
    ctx: ParseContext, obj: FieldReader, module: FieldReader, legacy: Any
) -> dict[str, InputTransform]:
    own = obj.raw("input_transforms")
    if legacy is None:
        return read_transforms(ctx, own, obj.at("input_transforms"))
    legacy_path = module.at("input_transforms")
    if own:
        ctx.warn(
            legacy_path,
            "module-level 'input_transforms' is ignored: value.input_transforms is also set",
            "remove the module-level input_transforms",
        )
        return read_transforms(ctx, own, obj.at("input_transforms"))
    ctx.warn(
        legacy_path,
        "legacy module-level 'input_transforms' moved into value.input_transforms",
        "move input_transforms under value:",
    )
    return read_transforms(ctx, legacy, legacy_path)


def _inline(
    ctx: ParseContext, obj: FieldReader, key: str, value: str, *, kind: InlineKind, module_id: str | None
) -> str:
    """Replace an ``!inline <file>`` reference by the file's text (spec 9.2)."""
    path = obj.at(key)
    if ctx.inline is None:
        ctx.error(
            path,
            f"'!inline {inline_name(value)}' cannot be resolved: the document was not loaded from a file",
            "load the flow from its flow.yaml/flow.json file, or put the code itself in the document",
        )
        return value
    read = ctx.inline.read(value, kind=kind, module_id=module_id)
    if read.text is not None:
        return read.text
    tried = " or ".join(read.looked_for) or "(no file name)"
    if read.unsafe:  # never a warning: the document tried to read what it must not
        ctx.error(
            path,
            f"inline file {tried} {read.reason}",
            "name a regular file inside the flow's workspace, by a relative path without '..' leaving it",
        )
        return ""
    if kind == "lock":  # the CLI treats a missing lock file as an empty lock
        ctx.warn(path, f"inline lock file {tried} {read.reason} in {ctx.inline.folder}; using an empty lock")
        return ""
    ctx.error(
        path,
        f"inline file {tried} {read.reason} in {ctx.inline.folder}",
        "create the file next to the flow file or fix the '!inline' reference",
    )
    return value


def _rawscript(
    ctx: ParseContext, obj: FieldReader, module_id: str | None, transforms: dict[str, InputTransform]
) -> RawScript:
    language = obj.string("language", required=True, hint="add language: python3 (or bash, ...)")
    content = obj.string("content", required=True, hint="add content: <the script's code>")
    if content is not None and is_inline_ref(content, kind="content"):
        content = _inline(ctx, obj, "content", content, kind="content", module_id=module_id)
    lock = obj.string("lock")
    if lock is not None and is_inline_ref(lock, kind="lock"):
        lock = _inline(ctx, obj, "lock", lock, kind="lock", module_id=module_id)
    value = RawScript(
        language=language or "",
        content=content or "",
        input_transforms=transforms,
        lock=lock,
        path=obj.string("path"),
        tag=obj.string("tag"),
        concurrent_limit=obj.number("concurrent_limit"),
        concurrency_time_window_s=obj.number("concurrency_time_window_s"),
        custom_concurrency_key=obj.string("custom_concurrency_key"),
        is_trigger=obj.boolean("is_trigger"),
        assets=obj.array("assets") or [],
        extra=obj.extra(silent=frozenset({"type"})),
        json_path=obj.path,
    )
    return value


def _script(
    ctx: ParseContext, obj: FieldReader, module_id: str | None, transforms: dict[str, InputTransform]
) -> PathScript:
    path = obj.string("path", required=True, hint="add path: f/folder/script_name")
    return PathScript(
        path=path or "",
        input_transforms=transforms,
        hash=obj.string("hash"),
        tag_override=obj.string("tag_override"),
        is_trigger=obj.boolean("is_trigger"),
        extra=obj.extra(silent=frozenset({"type"})),
        json_path=obj.path,
    )


def _flow(
    ctx: ParseContext, obj: FieldReader, module_id: str | None, transforms: dict[str, InputTransform]
) -> PathFlow:
    path = obj.string("path", required=True, hint="add path: f/folder/flow_name")
    return PathFlow(
        path=path or "",
        input_transforms=transforms,
        extra=obj.extra(silent=frozenset({"type"})),
        json_path=obj.path,
    )


def _parallelism(ctx: ParseContext, obj: FieldReader) -> InputTransform | None:
    raw = obj.raw("parallelism")
    return None if raw is None else read_transform(ctx, raw, obj.at("parallelism"), allow_number=True)


def _forloop(
    ctx: ParseContext, obj: FieldReader, module_id: str | None, transforms: dict[str, InputTransform]
) -> ForloopFlow:
    raw_iterator = obj.raw("iterator")
    iterator: InputTransform | None = None
    if raw_iterator is None:
        ctx.error(
            obj.at("iterator"),
            "missing required field 'iterator'",
            "add iterator: {type: javascript, expr: <expression giving a list>}",
        )
    else:
        iterator = read_transform(ctx, raw_iterator, obj.at("iterator"))
    modules = _modules(ctx, obj.array("modules", required=True, hint="add modules: [...]"), obj.at("modules"))
    return ForloopFlow(
        modules=modules,
        iterator=iterator or InputTransform(kind="static", value=[]),
        skip_failures=obj.boolean("skip_failures"),
        parallel=obj.boolean("parallel"),
        parallelism=_parallelism(ctx, obj),
        squash=obj.boolean("squash"),
        extra=obj.extra(silent=frozenset({"type"})),
        json_path=obj.path,
    )


def _whileloop(
    ctx: ParseContext, obj: FieldReader, module_id: str | None, transforms: dict[str, InputTransform]
) -> WhileloopFlow:
    modules = _modules(ctx, obj.array("modules", required=True, hint="add modules: [...]"), obj.at("modules"))
    return WhileloopFlow(
        modules=modules,
        skip_failures=obj.boolean("skip_failures"),
        parallel=obj.boolean("parallel"),
        parallelism=_parallelism(ctx, obj),
        squash=obj.boolean("squash"),
        extra=obj.extra(silent=frozenset({"type"})),
        json_path=obj.path,
    )


def _branches(ctx: ParseContext, obj: FieldReader, *, one: bool) -> list[Branch]:
    raw = obj.array("branches", required=True, hint="add branches: [...]")
    out: list[Branch] = []
    for index, item in enumerate(raw or []):
        path = join_path(obj.at("branches"), index)
        if not isinstance(item, dict):
            ctx.error(path, f"a branch must be a mapping, got {json_type(item)}", "write {modules: [...]}")
            continue
        sub = FieldReader(ctx, item, path)
        if one:
            expr = sub.expr("expr", required=True, hint="add expr: <JavaScript condition>")
        else:
            expr = sub.expr("expr")
        raw_modules = sub.array("modules", required=True, hint="add modules: [...]")
        modules = _modules(ctx, raw_modules, sub.at("modules"))
        out.append(
            Branch(
                modules=modules,
                expr=expr,
                summary=sub.string("summary"),
                skip_failure=sub.boolean("skip_failure"),
                extra=sub.extra(),
                json_path=path,
            )
        )
    return out


def _branchone(
    ctx: ParseContext, obj: FieldReader, module_id: str | None, transforms: dict[str, InputTransform]
) -> BranchOne:
    branches = _branches(ctx, obj, one=True)
    default = obj.array("default", required=True, hint="add default: [] (steps run when no branch matches)")
    return BranchOne(
        branches=branches,
        default=_modules(ctx, default, obj.at("default")),
        extra=obj.extra(silent=frozenset({"type"})),
        json_path=obj.path,
    )


def _branchall(
    ctx: ParseContext, obj: FieldReader, module_id: str | None, transforms: dict[str, InputTransform]
) -> BranchAll:
    return BranchAll(
        branches=_branches(ctx, obj, one=False),
        parallel=obj.boolean("parallel", default=True),
        extra=obj.extra(silent=frozenset({"type"})),
        json_path=obj.path,
    )


def _identity(
    ctx: ParseContext, obj: FieldReader, module_id: str | None, transforms: dict[str, InputTransform]
) -> Identity:
    return Identity(flow=obj.boolean("flow"), extra=obj.extra(silent=frozenset({"type"})), json_path=obj.path)


def _aiagent(
    ctx: ParseContext, obj: FieldReader, module_id: str | None, transforms: dict[str, InputTransform]
) -> AiAgent:
    tools = obj.array("tools") or []
    resolved: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            ctx.error(join_path(obj.at("tools"), index), f"a tool must be a mapping, got {json_type(tool)}")
            continue
        resolved.append(_inline_tool(ctx, tool, join_path(obj.at("tools"), index)))
    return AiAgent(
        input_transforms=transforms,
        tools=resolved,
        parallel=obj.boolean("parallel"),
        extra=obj.extra(silent=frozenset({"type"})),
        json_path=obj.path,
    )


def _inline_tool(ctx: ParseContext, tool: dict[str, Any], path: str) -> dict[str, Any]:
    """Resolve ``!inline`` in a rawscript tool of an AI agent (kept as raw JSON otherwise)."""
    value = tool.get("value")
    if (
        not isinstance(value, dict)
        or value.get("tool_type") != "flowmodule"
        or value.get("type") != "rawscript"
    ):
        return tool
    tool_id = tool.get("id") if isinstance(tool.get("id"), str) else None
    sub = FieldReader(ctx, value, join_path(path, "value"))
    new_value = dict(value)
    for key, kind in (("content", "content"), ("lock", "lock")):
        text = value.get(key)
        if is_inline_ref(text, kind=kind):  # type: ignore[arg-type]
            new_value[key] = _inline(ctx, sub, key, text, kind=kind, module_id=tool_id)  # type: ignore[arg-type]
    return {**tool, "value": new_value}


_Builder = Callable[[ParseContext, FieldReader, "str | None", "dict[str, InputTransform]"], ModuleValue]
_BUILDERS: dict[str, _Builder] = {
    "rawscript": _rawscript,
    "script": _script,
    "flow": _flow,
    "forloopflow": _forloop,
    "whileloopflow": _whileloop,
    "branchone": _branchone,
    "branchall": _branchall,
    "identity": _identity,
    "aiagent": _aiagent,
}


# ---------------------------------------------------------------------------------------------
# Document


def _flow_value(ctx: ParseContext, data: dict[Any, Any]) -> FlowValue:
    obj = FieldReader(ctx, data, "value")
    modules = _modules(ctx, obj.array("modules", required=True, hint="add modules: [...]"), obj.at("modules"))
    special: dict[str, FlowModule | None] = {}
    for key, role in (("failure_module", "failure"), ("preprocessor_module", "preprocessor")):
        raw = obj.raw(key)
        special[key] = None if raw is None else _module(ctx, raw, obj.at(key), role=role)  # type: ignore[arg-type]
    flow_env = obj.mapping("flow_env") or {}
    value = FlowValue(
        modules=modules,
        failure_module=special["failure_module"],
        preprocessor_module=special["preprocessor_module"],
        same_worker=obj.boolean("same_worker"),
        concurrent_limit=obj.number("concurrent_limit"),
        concurrency_key=obj.string("concurrency_key"),
        concurrency_time_window_s=obj.number("concurrency_time_window_s"),
        debounce_delay_s=obj.number("debounce_delay_s"),
        debounce_key=obj.string("debounce_key"),
        skip_expr=obj.expr("skip_expr"),
        cache_ttl=obj.number("cache_ttl"),
        flow_env={str(k): v for k, v in flow_env.items()},
        priority=obj.number("priority"),
        early_return=obj.string("early_return"),
        chat_input_enabled=obj.boolean("chat_input_enabled"),
        notes=obj.array("notes") or [],
        extra=obj.extra(),
        json_path="value",
    )
    return value


def parse_document(data: Any, *, source: FlowSource, inline: InlineFiles | None) -> ParseResult:
    """Build the model from parsed JSON/YAML data. ``inline`` resolves ``!inline`` files (None: no folder)."""
    ctx = ParseContext(file=source.file, inline=inline)
    if not isinstance(data, dict):
        ctx.error(
            "",
            f"the document must be a mapping with 'summary' and 'value', got {json_type(data)}",
            "an OpenFlow document looks like {summary: ..., value: {modules: [...]}}",
        )
        return ParseResult(None, ctx.errors, ctx.warnings)
    obj = FieldReader(ctx, data, "")
    summary = obj.raw("summary")
    if summary is None:
        ctx.warn("summary", "missing field 'summary'", "add summary: <a short title for the flow>")
        summary = ""
    elif not isinstance(summary, str):
        ctx.error("summary", f"'summary' must be a string, got {json_type(summary)}", TYPE_HINTS["a string"])
        summary = ""
    description = obj.string("description")
    raw_value = obj.mapping("value", required=True, hint="add value: {modules: [...]}")
    value = _flow_value(ctx, raw_value) if raw_value is not None else None
    schema = obj.mapping("schema")
    extra = obj.extra(silent=DEPLOYMENT_KEYS)
    if ctx.errors or value is None:
        return ParseResult(None, ctx.errors, ctx.warnings)
    flow = OpenFlow(
        summary=summary,
        value=value,
        description=description,
        schema=schema,
        source=source,
        extra=extra,
    )
    return ParseResult(flow, ctx.errors, ctx.warnings)
