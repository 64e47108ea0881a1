"""Step settings and input transforms: the small shapes a step is made of.

``input_transforms`` entries, ``stop_after_if``/``stop_after_all_iters_if``, ``skip_if``, ``mock``,
``suspend``, ``retry``, and the transforms that may also be plain numbers (``sleep``, ``timeout``).
"""

from __future__ import annotations

from typing import Any

from airflow_openflow.spec.locate import join_path
from airflow_openflow.spec.model import (
    ConstantRetry,
    ExponentialRetry,
    InputTransform,
    Mock,
    Retry,
    SkipIf,
    StopAfterIf,
    Suspend,
)
from airflow_openflow.spec.parse_reader import TYPE_HINTS, FieldReader, ParseContext, is_number, json_type

TRANSFORM_KINDS = ("static", "javascript", "ai")


def read_transform(
    ctx: ParseContext, data: Any, path: str, *, allow_number: bool = False
) -> InputTransform | None:
    if allow_number and is_number(data):  # old documents write ``sleep: 5`` / ``timeout: 60``
        return InputTransform(kind="static", value=data, json_path=path)
    if not isinstance(data, dict):
        ctx.error(
            path,
            f"input transform must be a mapping, got {json_type(data)}",
            "write {type: static, value: ...} or {type: javascript, expr: ...}",
        )
        return None
    obj = FieldReader(ctx, data, path)
    kind = obj.raw("type")
    if kind not in TRANSFORM_KINDS:
        got = "missing" if kind is None else repr(kind)
        ctx.error(
            obj.at("type"),
            f"input transform type must be 'static', 'javascript' or 'ai', got {got}",
            "write type: static (with value) or type: javascript (with expr)",
        )
        obj.extra(silent=frozenset({"value", "expr"}))
        return None
    value = obj.raw("value")
    if kind == "javascript":
        expr = obj.expr("expr", required=True, hint="add expr: <JavaScript expression>")
    else:  # the editor may leave a stale ``expr`` on a static transform: keep it quiet
        raw_expr = obj.raw("expr")
        expr = raw_expr if isinstance(raw_expr, str) else None
    obj.extra()
    if kind == "javascript" and expr is None:
        return None
    return InputTransform(kind=kind, value=value, expr=expr, json_path=path)


def read_transforms(ctx: ParseContext, data: Any, path: str) -> dict[str, InputTransform]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        ctx.error(
            path, f"'input_transforms' must be a mapping, got {json_type(data)}", TYPE_HINTS["a mapping"]
        )
        return {}
    out: dict[str, InputTransform] = {}
    for name, raw in data.items():
        if not isinstance(name, str):
            ctx.error(path, f"argument name {name!r} must be a string", "quote the argument name")
            continue
        transform = read_transform(ctx, raw, join_path(path, name))
        if transform is not None:
            out[name] = transform
    return out


def read_stop(ctx: ParseContext, obj: FieldReader, key: str) -> StopAfterIf | None:
    data = obj.mapping(key)
    if data is None:
        return None
    sub = FieldReader(ctx, data, obj.at(key))
    expr = sub.expr("expr", required=True, hint="add expr: <JavaScript condition>")
    stop = StopAfterIf(
        expr=expr or "",
        skip_if_stopped=sub.boolean("skip_if_stopped"),
        error_message=sub.string("error_message"),
        error_include_result=sub.boolean("error_include_result"),
        json_path=sub.path,
    )
    sub.extra()
    return stop


def read_skip_if(ctx: ParseContext, obj: FieldReader) -> SkipIf | None:
    data = obj.mapping("skip_if")
    if data is None:
        return None
    sub = FieldReader(ctx, data, obj.at("skip_if"))
    expr = sub.expr("expr", required=True, hint="add expr: <JavaScript condition>")
    sub.extra()
    return SkipIf(expr=expr or "", json_path=sub.path)


def read_mock(ctx: ParseContext, obj: FieldReader) -> Mock | None:
    data = obj.mapping("mock")
    if data is None:
        return None
    sub = FieldReader(ctx, data, obj.at("mock"))
    mock = Mock(enabled=sub.boolean("enabled"), return_value=sub.raw("return_value"), json_path=sub.path)
    sub.extra()
    return mock


def read_suspend(ctx: ParseContext, obj: FieldReader) -> Suspend | None:
    data = obj.mapping("suspend")
    if data is None:
        return None
    sub = FieldReader(ctx, data, obj.at("suspend"))
    required_events = sub.integer("required_events")
    groups = sub.raw("user_groups_required")
    suspend = Suspend(
        required_events=1 if required_events is None else required_events,
        timeout=sub.integer("timeout"),
        resume_form=sub.mapping("resume_form"),
        user_auth_required=sub.boolean("user_auth_required"),
        user_groups_required=(
            None if groups is None else read_transform(ctx, groups, sub.at("user_groups_required"))
        ),
        self_approval_disabled=sub.boolean("self_approval_disabled"),
        hide_cancel=sub.boolean("hide_cancel"),
        continue_on_disapprove_timeout=sub.boolean("continue_on_disapprove_timeout"),
        json_path=sub.path,
    )
    sub.extra()
    return suspend


def read_retry(ctx: ParseContext, obj: FieldReader) -> Retry | None:
    data = obj.mapping("retry")
    if data is None:
        return None
    sub = FieldReader(ctx, data, obj.at("retry"))
    constant: ConstantRetry | None = None
    raw_constant = sub.mapping("constant")
    if raw_constant is not None:
        c = FieldReader(ctx, raw_constant, sub.at("constant"))
        constant = ConstantRetry(attempts=c.integer("attempts") or 0, seconds=c.number("seconds") or 0)
        c.extra()
    exponential: ExponentialRetry | None = None
    raw_exp = sub.mapping("exponential")
    if raw_exp is not None:
        e = FieldReader(ctx, raw_exp, sub.at("exponential"))
        seconds = e.number("seconds")
        multiplier = e.number("multiplier")
        exponential = ExponentialRetry(
            attempts=e.integer("attempts") or 0,
            multiplier=1 if multiplier is None else multiplier,
            seconds=1 if seconds is None else seconds,
            random_factor=e.number("random_factor"),
        )
        # Windmill rejects a base below 1 (spec 2.2); the editor writes 0 when retries are off.
        if exponential.attempts > 0 and exponential.seconds < 1:
            ctx.error(
                e.at("seconds"),
                f"exponential retry 'seconds' must be at least 1, got {exponential.seconds}",
                "the delay is multiplier * seconds^attempt: use seconds >= 1",
            )
        e.extra()
    retry_if: str | None = None
    raw_if = sub.mapping("retry_if")
    if raw_if is not None:
        r = FieldReader(ctx, raw_if, sub.at("retry_if"))
        retry_if = r.expr("expr", required=True, hint="add expr: <JavaScript condition>")
        r.extra()
    sub.extra()
    return Retry(constant=constant, exponential=exponential, retry_if=retry_if, json_path=sub.path)


def read_optional_transform(ctx: ParseContext, obj: FieldReader, key: str) -> InputTransform | None:
    raw = obj.raw(key)
    return None if raw is None else read_transform(ctx, raw, obj.at(key), allow_number=True)
