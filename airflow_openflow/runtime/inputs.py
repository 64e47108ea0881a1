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


#: Key of a sub-flow run's ``conf`` that carries the calling flow's ``flow_env``: a child flow
#: without a ``flow_env`` of its own uses its caller's (spec 1.2). Not part of the flow input.
CALLER_FLOW_ENV_KEY = "__openflow_caller_flow_env"
#: Key of a run's ``conf`` holding the trigger event (``{"kind": ..., ...}``) of a run started by
#: an external trigger: the flow's preprocessor runs on it (spec 1.2). Not part of the flow input.
TRIGGER_EVENT_KEY = "__openflow_event"
#: Key of a sub-flow run's ``conf`` holding the ``./shared`` location of a ``same_worker`` caller
#: (``{"base", "dag_id", "run_id"}``): the child's steps share the caller's folder (spec 7.3).
CALLER_SHARED_KEY = "__openflow_caller_shared"
_RESERVED_KEYS = (CALLER_FLOW_ENV_KEY, TRIGGER_EVENT_KEY, CALLER_SHARED_KEY)


def flow_input_from(args: Mapping[str, Any] | None, schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Windmill's engine does not validate arguments; its UI pre-fills defaults (spec 1.1). We apply
    the defaults for missing keys, keep every key the caller gave (unknown ones too), and nothing else."""
    merged = schema_defaults(schema)
    merged.update({key: value for key, value in (args or {}).items() if key not in _RESERVED_KEYS})
    return merged


def preprocessed_input(result: Any, schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The flow input a preprocessor's result gives (spec 1.2): an object is the input, anything
    else is wrapped as ``{"value": result}``; the schema's defaults fill what it leaves out."""
    args = dict(result) if isinstance(result, Mapping) else {"value": result}
    return flow_input_from(args, schema)


def caller_flow_env(conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """The calling flow's ``flow_env`` a sub-flow run was started with ({} for other runs)."""
    env = (conf or {}).get(CALLER_FLOW_ENV_KEY)
    return dict(env) if isinstance(env, Mapping) else {}
