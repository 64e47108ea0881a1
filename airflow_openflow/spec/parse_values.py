"""The values of steps that hold no other steps: rawscript, script, flow, identity, aiagent.

A rawscript's ``content``/``lock`` (and those of an AI agent's rawscript tools) may be ``!inline``
references: they are replaced here by the referenced file's text (spec 9.2).
"""

from __future__ import annotations

from typing import Any

from airflow_openflow.spec.inline import InlineKind, inline_name, is_inline_ref
from airflow_openflow.spec.locate import join_path
from airflow_openflow.spec.model import AiAgent, Identity, InputTransform, PathFlow, PathScript, RawScript
from airflow_openflow.spec.parse_reader import FieldReader, ParseContext, json_type


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


def read_rawscript(
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


def read_script(
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


def read_flow(
    ctx: ParseContext, obj: FieldReader, module_id: str | None, transforms: dict[str, InputTransform]
) -> PathFlow:
    path = obj.string("path", required=True, hint="add path: f/folder/flow_name")
    return PathFlow(
        path=path or "",
        input_transforms=transforms,
        extra=obj.extra(silent=frozenset({"type"})),
        json_path=obj.path,
    )


def read_identity(
    ctx: ParseContext, obj: FieldReader, module_id: str | None, transforms: dict[str, InputTransform]
) -> Identity:
    return Identity(flow=obj.boolean("flow"), extra=obj.extra(silent=frozenset({"type"})), json_path=obj.path)


def read_aiagent(
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
