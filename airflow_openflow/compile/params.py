"""The flow's JSON schema as DAG ``params``, so Airflow's trigger form renders the flow inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param

from airflow_openflow.spec.json_schema import allow_null, first_violation, property_schema


def params_from_schema(
    schema: Mapping[str, Any] | None, *, enforce_required: bool = True
) -> dict[str, Param]:
    """One ``Param`` per schema property. A property with a default is pre-filled; a required one
    without a default must be given when triggering (as in Windmill's run form), unless
    ``enforce_required`` is false; an optional one without a default may be left empty (null).
    Each ``Param``'s schema is its property as ``spec.json_schema.property_schema`` shapes it (the
    one the loader checked the default against; ``$ref``s to the schema's ``$defs`` resolve)."""
    if not schema or not isinstance(schema.get("properties"), Mapping):
        return {}
    required = set(schema.get("required") or ()) if enforce_required else set()
    params: dict[str, Param] = {}
    for name, raw in schema["properties"].items():
        prop = property_schema(schema, raw)
        description = prop.pop("description", None)
        if "default" in prop:
            default = prop.pop("default")
            if default is None:
                allow_null(prop)
            if default is not None and _breaks(prop, default):
                # Windmill runs with such a default (it never checks it); Airflow would refuse every
                # run. The input stays in the form, unchecked (the loader warns: spec/schema_check.py).
                params[name] = Param(default, description=description, title=prop.get("title"))
                continue
            params[name] = Param(default, description=description, **prop)
        elif name in required:
            params[name] = Param(description=description, **prop)
        else:
            allow_null(prop)
            params[name] = Param(None, description=description, **prop)
    return params


def _breaks(prop: Mapping[str, Any], default: Any) -> bool:
    try:
        return first_violation(prop, default) is not None
    except Exception:
        return False  # a schema jsonschema cannot use is the loader's error, not this one's
