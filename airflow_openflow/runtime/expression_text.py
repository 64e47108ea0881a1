"""The text side of an expression's evaluation (runtime/expression_engine.py): its source made a
function body, the ids it reads literally (fetched before the first pass), the names it may use;
values to and from JSON as they cross into QuickJS and back; JavaScript truthiness of a result.

No QuickJS import.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Final

from airflow_openflow.runtime.errors import ExpressionError
from airflow_openflow.spec.js_text import has_code_semicolon, skip_trivia

Key = tuple[str, str]  # ("results" | "variable" | "resource", id or path)

# ---------------------------------------------------------------------------------------------
# Source handling

_STATEMENT_KEYWORDS: Final = frozenset(
    {"const", "let", "var", "if", "try", "for", "while", "return", "throw", "switch"}
    | {"function", "do", "class"}
)
IDENT = re.compile(r"[A-Za-z_$][\w$]*")
IDENT_FULL = re.compile(r"[A-Za-z_$][\w$]*\Z")
FAST_MEMBER = re.compile(r"(flow_input|flow_env|results)\.([A-Za-z_$][\w$]*)\Z")
# Literal references, fetched before the first pass (see module docstring).
RESULTS_REF = re.compile(
    r"""(?<![\w$.])results\s*(?:\?\.|\.)\s*([A-Za-z_$][\w$]*)"""
    r"""|(?<![\w$.])results\s*(?:\?\.)?\s*\[\s*(?:"([^"\\\n]*)"|'([^'\\\n]*)')\s*\]"""
)
MAY_THROW_NULL = re.compile(r"throw|reject|Promise|eval|Function")
CALL_REF = re.compile(
    r"""(?<![\w$.])(variable|resource)\s*\(\s*(?:"([^"\\\n]*)"|'([^'\\\n]*)'|`([^`\\$\n]*)`)\s*\)"""
)
# Names every JS object inherits: ``flow_input.constructor`` is not undefined, so no fast path.
OBJECT_PROTO_NAMES: Final = frozenset(dir(object)) | frozenset(
    {
        "constructor", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable", "toLocaleString",
        "toString", "valueOf", "__proto__", "__defineGetter__", "__defineSetter__", "__lookupGetter__",
        "__lookupSetter__",
    }
)  # fmt: skip
RESERVED_NAMES: Final = frozenset(
    {"flow_input", "previous_result", "results", "flow_env", "params", "result", "variable", "resource"}
)


def _is_function_body(src: str) -> bool:
    start = skip_trivia(src)
    m = IDENT.match(src, start)
    if m and m.group() in _STATEMENT_KEYWORDS:
        return True
    return has_code_semicolon(src)


@lru_cache(maxsize=2048)
def to_function_body(src: str) -> str:
    if _is_function_body(src):
        return src
    # Newlines keep a trailing ``// comment`` from swallowing the closing parenthesis.
    return f"return (\n{src}\n);"


@lru_cache(maxsize=2048)
def literal_refs(src: str) -> tuple[Key, ...]:
    """The ids ``src`` reads literally, in order, each once (fetched before the first pass)."""
    keys: list[Key] = []
    for m in RESULTS_REF.finditer(src):
        keys.append(("results", next(g for g in m.groups() if g is not None)))
    for m in CALL_REF.finditer(src):
        keys.append((m.group(1), next(g for g in m.groups()[1:] if g is not None)))
    return tuple(dict.fromkeys(keys))


# ---------------------------------------------------------------------------------------------
# JSON helpers


_ENCODER: Final = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # what json.dumps would make


def dumps(value: Any, expr: str, what: str) -> str:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ExpressionError(expr, "TypeError", f"{what} is not JSON-serializable: {exc}") from exc


def parse_report(text: Any) -> dict[str, Any] | None:
    """The prelude's report: one JSON line (settled, ok, error, misses), a newline, the value's JSON."""
    if not isinstance(text, str):
        return None
    line, _, value = text.partition("\n")
    report = json.loads(line)
    if not isinstance(report, dict):
        return None
    report["json"] = value
    return report


def json_copy(value: Any, expr: str, what: str) -> Any:
    return json.loads(dumps(value, expr, what))


def js_truthy(value: Any) -> bool:
    """``Boolean(v)`` for a JSON value: unlike Python, empty arrays and objects are true."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return True


def fmt_number(x: float) -> str:
    return f"{x:.3g}" if x != int(x) else str(int(x))
