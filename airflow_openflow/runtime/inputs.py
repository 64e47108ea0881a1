"""The flow input (``flow_input``) of a run: the caller's arguments with schema defaults applied."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def schema_defaults(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Top-level ``default`` values of a flow schema's properties."""
    if not schema:
        return {}
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    return {
        name: copy.deepcopy(prop["default"])
        for name, prop in properties.items()
        if isinstance(prop, Mapping) and "default" in prop
    }


def flow_input_from(args: Mapping[str, Any] | None, schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Windmill's engine does not validate arguments; its UI pre-fills defaults (spec 1.1). We apply
    the defaults for missing keys, keep every key the caller gave (unknown ones too), and nothing else."""
    merged = schema_defaults(schema)
    merged.update(args or {})
    return merged
