"""Raw JSON data (already parsed) -> typed model, collecting every problem on the way.

The parser never stops at the first problem: a field with a wrong type is reported and replaced by
its default so that the rest of the document is still checked. When any error was found the model
is discarded (``ParseResult.flow`` is None) and the caller raises with all of them.

Problems are created without line numbers; the loader adds them afterwards from ``json_path``.

Layout (imports point down the list only): this module is the entry point and reads the document's
top level (``summary``, ``description``, ``schema``, ``value`` with its ``failure_module`` and
``preprocessor_module``, deployment keys); ``parse_steps`` reads a step (id checks, value dispatch)
and the containers (loops, branches) that hold steps; ``parse_values`` the values that hold no steps
(rawscript with ``!inline`` files, script and flow by path, identity, aiagent); ``parse_settings``
input transforms and step settings (``stop_after_if``, ``skip_if``, ``mock``, ``suspend``,
``retry``); ``parse_reader`` the walk's context (problems, step ids) and the typed field readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.inline import InlineFiles
from airflow_openflow.spec.model import FlowModule, FlowSource, FlowValue, OpenFlow
from airflow_openflow.spec.parse_reader import TYPE_HINTS, FieldReader, ParseContext, json_type
from airflow_openflow.spec.parse_steps import read_module, read_modules

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


def _flow_value(ctx: ParseContext, data: dict[Any, Any]) -> FlowValue:
    obj = FieldReader(ctx, data, "value")
    modules = read_modules(
        ctx, obj.array("modules", required=True, hint="add modules: [...]"), obj.at("modules")
    )
    special: dict[str, FlowModule | None] = {}
    for key, role in (("failure_module", "failure"), ("preprocessor_module", "preprocessor")):
        raw = obj.raw(key)
        special[key] = None if raw is None else read_module(ctx, raw, obj.at(key), role=role)  # type: ignore[arg-type]
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
