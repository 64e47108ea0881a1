"""The JSON schema one flow input is checked against, from the flow's ``schema`` (or an approval's
``resume_form.schema``). One definition for the DAG's ``Param``s (``compile/params.py``) and for the
load-time check of defaults (``spec/schema_check.py``), so that what loads is what Airflow accepts.

No Airflow here; ``jsonschema`` is imported only when a schema is checked.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from typing import Any

#: Windmill-only keywords that mean nothing to jsonschema or to Airflow's form.
WINDMILL_ONLY = ("order", "$schema", "disableCreate", "showExpr", "customErrorMessage", "password")
#: Where a schema keeps the subschemas its ``$ref``s point at (2020-12, and drafts up to 7).
DEFINITION_KEYS = ("$defs", "definitions")
#: Keywords whose value is data, not a schema: a ``$ref`` key in there is not a reference.
DATA_KEYWORDS = frozenset({"default", "enum", "const", "examples"})
DEFAULT_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def property_schema(root: Mapping[str, Any], raw: Any) -> dict[str, Any]:
    """The schema of input ``raw`` (a property of ``root``) as Airflow checks it: without
    Windmill-only keywords (``password: true`` becomes ``format: password``), in the dialect
    ``root`` declares, and with ``root``'s ``$defs`` / ``definitions`` when it has ``$ref``s, so that
    ``#/$defs/<name>`` resolves as it does in the whole document. ``default`` and ``description``
    are left in (the caller takes them out)."""
    if not isinstance(raw, Mapping):
        return {}
    prop = {k: copy.deepcopy(v) for k, v in raw.items() if k not in WINDMILL_ONLY}
    if raw.get("password") is True:
        prop.setdefault("format", "password")  # Airflow's form masks it
    dialect = root.get("$schema")
    if isinstance(dialect, str) and known_dialect(dialect):
        prop["$schema"] = dialect
    if any(True for _ in references(prop)):
        for key in DEFINITION_KEYS:
            shared = root.get(key)
            if isinstance(shared, Mapping):
                own = prop.get(key)
                prop[key] = {**(own if isinstance(own, Mapping) else {}), **copy.deepcopy(dict(shared))}
    return prop


def first_violation(prop: Mapping[str, Any], value: Any) -> Any | None:
    """The jsonschema error that best says how ``value`` breaks ``prop`` (as Airflow's ``Param``
    checks it), or None when it fits. Raises what jsonschema raises for a schema it cannot use."""
    from jsonschema import FormatChecker
    from jsonschema.exceptions import best_match

    schema = dict(prop)
    if value is None:
        allow_null(schema)
    cls = validator_class(schema)
    return best_match(cls(schema, format_checker=FormatChecker()).iter_errors(value))


def allow_null(prop: dict[str, Any]) -> None:
    """Widen ``prop`` so that ``null`` passes (an optional input left empty, a ``null`` default)."""
    kind = prop.get("type")
    if isinstance(kind, str) and kind != "null":
        prop["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        prop["type"] = [*kind, "null"]
    if isinstance(prop.get("enum"), list) and None not in prop["enum"]:
        prop["enum"] = [*prop["enum"], None]


def references(schema: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """(path inside ``schema``, value) of every ``$ref``, data keywords (``default``...) excluded."""
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key == "$ref":
                yield (*path, key), value
            elif key not in DATA_KEYWORDS:
                yield from references(value, (*path, key))
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from references(item, (*path, index))


def known_dialect(uri: str) -> bool:
    """Whether ``jsonschema`` knows the metaschema ``uri`` (``$schema``)."""
    from jsonschema.validators import validator_for

    try:  # the lookup normalises the URI: '.../draft-07/schema#' is '.../draft-07/schema'
        return validator_for({"$schema": uri}, default=_Unknown) is not _Unknown
    except (TypeError, ValueError):
        return False


class _Unknown:
    """What ``validator_for`` returns for a ``$schema`` it does not know (its ``default``)."""


def validator_class(schema: Mapping[str, Any]) -> Any:
    """The validator of the dialect ``schema`` declares (``$schema``), draft 2020-12 by default."""
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    dialect = schema.get("$schema")
    if not isinstance(dialect, str) or not known_dialect(dialect):
        return Draft202012Validator
    return validator_for(schema, default=Draft202012Validator)


@functools.cache
def metaschema_validator(cls: Any) -> Any:
    """A validator of schemas written in ``cls``'s dialect (formats checked: ``pattern`` regexes)."""
    from jsonschema.validators import validator_for

    meta = validator_for(cls.META_SCHEMA, default=cls)
    return meta(cls.META_SCHEMA, format_checker=meta.FORMAT_CHECKER)


def metaschema_errors(schema: Mapping[str, Any], cls: Any) -> list[Any]:
    """Every ``jsonschema`` error of ``schema`` against the metaschema of ``cls``'s dialect, each
    with ``absolute_path`` inside ``schema``.

    Checking a schema against the 2020-12 metaschema costs about 2 ms per input, paid at every
    parse of every flow: each input's schema is checked on its own (the metaschema applies itself
    to each of ``properties`` the same way), and an input whose shape was seen valid before in
    this process is not checked again (:func:`_shape`)."""
    validator = metaschema_validator(cls)
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return list(validator.iter_errors(dict(schema)))
    rest = {**schema, "properties": {}}  # the schema around its inputs: checked once per shape too
    errors = [] if _known_valid(cls, rest) else list(validator.iter_errors(rest))
    for name, sub in properties.items():
        if _known_valid(cls, sub):
            continue
        for error in validator.iter_errors(sub):
            error.path.extendleft([name, "properties"])  # -> properties.<name>...
            errors.append(error)
    return errors


_VALID_SHAPES: dict[tuple[Any, str], bool] = {}
_MAX_SHAPES = 4096


def _known_valid(cls: Any, schema: Any) -> bool:
    """Whether ``schema`` is valid in ``cls``'s dialect, judged on its shape and remembered."""
    import json

    try:
        key = (cls, json.dumps(_shape(schema), sort_keys=True))
    except (TypeError, ValueError):
        return False
    known = _VALID_SHAPES.get(key)
    if known is None:
        known = metaschema_validator(cls).is_valid(json.loads(key[1]))
        if len(_VALID_SHAPES) < _MAX_SHAPES:
            _VALID_SHAPES[key] = known
    return known


def _shape(node: Any) -> Any:
    """``node`` with the values of annotation keywords replaced by values of the same JSON type
    (the metaschema only asks ``title``, ``description``, ``$comment`` for strings, ``examples``
    for an array, anything of ``default``): schemas that differ only there are one shape. Where such
    a key is a property name instead, the change can only turn a valid schema invalid (a ``default``
    property's schema becomes null), never the reverse; an invalid shape is checked as written."""
    if isinstance(node, list):
        return [_shape(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "default":
            out[key] = None
        elif key == "examples" and isinstance(value, list):
            out[key] = []
        elif key in ("title", "description", "$comment") and isinstance(value, str | int | float):
            out[key] = "" if isinstance(value, str) else 0
        elif key in ("enum", "const"):
            out[key] = value  # data, kept: its type is what is checked
        else:
            out[key] = _shape(value)
    return out
