"""Steps: the flow module around a value (id, settings) and the containers that hold steps.

``read_module`` checks the step id (Airflow task id rules, reserved and duplicate ids), reads the
value (with the legacy module-level ``input_transforms``) and the step settings.
``read_modules`` reads a list of steps; the loops and branches read their own lists through it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from airflow_openflow.spec.locate import join_path
from airflow_openflow.spec.model import (
    MODULE_TYPES,
    Branch,
    BranchAll,
    BranchOne,
    FlowModule,
    ForloopFlow,
    Identity,
    InputTransform,
    ModuleValue,
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
from airflow_openflow.spec.parse_values import (
    read_aiagent,
    read_flow,
    read_identity,
    read_rawscript,
    read_script,
)
from airflow_openflow.spec.suggest import did_you_mean

Role = Literal["step", "failure", "preprocessor"]

# Step ids become Airflow task ids (no dots: Airflow uses them for task-group prefixes).
STEP_ID_RE = re.compile(r"[A-Za-z0-9_-]+\Z")
STEP_ID_MAX = 200


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


def read_modules(ctx: ParseContext, data: list[Any] | None, path: str) -> list[FlowModule]:
    out: list[FlowModule] = []
    for index, item in enumerate(data or []):
        module = read_module(ctx, item, join_path(path, index), role="step")
        if module is not None:
            out.append(module)
    return out


def read_module(ctx: ParseContext, data: Any, path: str, *, role: Role) -> FlowModule | None:
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
        guess = did_you_mean(kind, MODULE_TYPES) if isinstance(kind, str) else ""
        ctx.error(
            obj.at("type"),
            f"unknown step type {kind!r}{': ' + guess if guess else ''} (known types: {known})",
            "fix the type",
        )
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
    modules = read_modules(
        ctx, obj.array("modules", required=True, hint="add modules: [...]"), obj.at("modules")
    )
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
    modules = read_modules(
        ctx, obj.array("modules", required=True, hint="add modules: [...]"), obj.at("modules")
    )
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
        modules = read_modules(ctx, raw_modules, sub.at("modules"))
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
        default=read_modules(ctx, default, obj.at("default")),
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


_Builder = Callable[[ParseContext, FieldReader, "str | None", "dict[str, InputTransform]"], ModuleValue]
_BUILDERS: dict[str, _Builder] = {
    "rawscript": read_rawscript,
    "script": read_script,
    "flow": read_flow,
    "forloopflow": _forloop,
    "whileloopflow": _whileloop,
    "branchone": _branchone,
    "branchall": _branchall,
    "identity": read_identity,
    "aiagent": read_aiagent,
}
