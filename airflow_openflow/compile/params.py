"""The flow's JSON schema as DAG ``params``, so Airflow's trigger form renders the flow inputs."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param

# Windmill-only keywords that mean nothing to jsonschema or to Airflow's form.
_WINDMILL_ONLY = ("order", "$schema", "disableCreate", "showExpr", "customErrorMessage", "password")


def params_from_schema(
    schema: Mapping[str, Any] | None, *, enforce_required: bool = True
) -> dict[str, Param]:
    """One ``Param`` per schema property. A property with a default is pre-filled; a required one
    without a default must be given when triggering (as in Windmill's run form), unless
    ``enforce_required`` is false; an optional one without a default may be left empty (null)."""
    if not schema or not isinstance(schema.get("properties"), Mapping):
        return {}
    required = set(schema.get("required") or ()) if enforce_required else set()
    params: dict[str, Param] = {}
    for name, raw in schema["properties"].items():
        prop = (
            {k: copy.deepcopy(v) for k, v in raw.items() if k not in _WINDMILL_ONLY}
            if isinstance(raw, Mapping)
            else {}
        )
        description = prop.pop("description", None)
        if isinstance(raw, Mapping) and raw.get("password") is True:
            prop.setdefault("format", "password")  # Airflow's form masks it
        if "default" in prop:
            default = prop.pop("default")
            if default is None:
                _allow_null(prop)
            params[name] = Param(default, description=description, **prop)
        elif name in required:
            params[name] = Param(description=description, **prop)
        else:
            _allow_null(prop)
            params[name] = Param(None, description=description, **prop)
    return params


def _allow_null(prop: dict[str, Any]) -> None:
    kind = prop.get("type")
    if isinstance(kind, str) and kind != "null":
        prop["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        prop["type"] = [*kind, "null"]
    if isinstance(prop.get("enum"), list) and None not in prop["enum"]:
        prop["enum"] = [*prop["enum"], None]
