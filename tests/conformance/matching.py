"""Checks of the conformance README: JSON equality, JSON Pointer paths and the match operators."""

from __future__ import annotations

import json
from typing import Any

_MISSING = object()


def json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def json_pointer(document: Any, pointer: str) -> Any:
    if pointer == "":
        return document
    current = document
    for raw in pointer.lstrip("/").split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            return _MISSING
    return current


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def check_expectation(status: str, result: Any, expect: dict[str, Any]) -> None:
    shown = json.dumps(result, ensure_ascii=False, default=str)[:3000]
    assert status == expect["status"], f"status {status!r}, expected {expect['status']!r}; result: {shown}"
    if "result" in expect:
        assert json_equal(result, expect["result"]), (
            f"result {shown}, expected {json.dumps(expect['result'])}"
        )
    for check in expect.get("match", []):
        value = json_pointer(result, check["path"])
        assert value is not _MISSING, f"path {check['path']!r} not in result {shown}"
        if "equals" in check:
            assert json_equal(value, check["equals"]), f"{check['path']}: {value!r} != {check['equals']!r}"
        elif "contains" in check:
            assert isinstance(value, str) and check["contains"] in value, f"{check['path']}: {value!r}"
        elif "length" in check:
            assert isinstance(value, list) and len(value) == check["length"], f"{check['path']}: {value!r}"
        elif "type" in check:
            assert json_type(value) == check["type"], (
                f"{check['path']}: {json_type(value)} != {check['type']}"
            )
        else:
            raise AssertionError(f"unknown match operator in {check}")
