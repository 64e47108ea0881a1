"""Built DAGs kept as bytes between parses (the parse cache's derived entries, ``dag_factory``).

Why: a warm parse of an unchanged folder still built every DAG object, which costs what the same
DAGs written by hand in Python cost (``BaseOperator.__init__``, the params deep-copied into every
task); unpickling the DAG built in an earlier parse costs about a third of that
(docs/performance.md). Airflow has no public API to keep a DAG between parses.

What it relies on (checked on Airflow 3.3.2, ``tests/unit/compat/test_contracts.py``):

- the Task SDK's ``DAG``, operators, task groups and params pickle (operators drop their logger in
  ``__getstate__``), and a DAG unpickled serializes exactly as the one that was pickled;
- ``NOTSET`` and ``SET_DURING_EXECUTION`` (``airflow.sdk.definitions._internal.types``) are
  compared by identity (``Param.value is NOTSET``: a required input): they are written as
  references and read back as the process's own objects.

Only classes and functions from :data:`ALLOWED_MODULES` are read back: a DAG whose arguments
reference code of the DAG file itself (a callback defined there) is not kept (:func:`checked_dumps`
returns None), as such a pickle would import the DAG file while it is being parsed.
"""

from __future__ import annotations

import copyreg
import functools
import io
import pickle
from typing import Any

#: Modules whose classes and functions a kept DAG may reference: each name, and its sub-modules.
ALLOWED_MODULES = (
    "airflow",
    "airflow_openflow",
    "pendulum",
    "dateutil",
    "builtins",
    "copyreg",
    "collections",
    "datetime",
    "zoneinfo",
    "enum",
    "functools",
    "re",
    "decimal",
    "uuid",
    "pathlib",
    "_codecs",
    "copy",
    "attr",
    "attrs",
    "croniter",
    "jinja2",
)


@functools.cache
def _sentinels() -> dict[str, object]:
    from airflow.sdk.definitions._internal.types import NOTSET, SET_DURING_EXECUTION

    return {"NOTSET": NOTSET, "SET_DURING_EXECUTION": SET_DURING_EXECUTION}


def sentinel(name: str) -> object:
    """The process's own sentinel object (what a kept DAG's reference to one is read back as)."""
    return _sentinels()[name]


@functools.cache
def _dispatch_table() -> dict[type, Any]:
    from airflow_openflow.spec.parse_cache import fast_reducers

    table: dict[type, Any] = {**copyreg.dispatch_table, **fast_reducers()}
    for name, value in _sentinels().items():
        table[type(value)] = functools.partial(_reduce_sentinel, name)
    return table


def _reduce_sentinel(name: str, obj: object) -> tuple[Any, ...]:
    return sentinel, (name,)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if not allowed(module):
            raise pickle.UnpicklingError(f"{module}.{name} is not read back from a kept DAG")
        return super().find_class(module, name)


def allowed(module: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in ALLOWED_MODULES)


def dumps(value: object) -> bytes | None:
    """``value`` (a DAG, with whatever is kept with it) as bytes, or None when it does not pickle."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _dispatch_table()
    try:
        pickler.dump(value)
    except Exception:
        return None
    return buffer.getvalue()


def checked_dumps(value: object) -> bytes | None:
    """As :func:`dumps`, also None when the bytes reference code outside :data:`ALLOWED_MODULES`
    (read back once to find out: for small values, such as what a DAG is built from)."""
    data = dumps(value)
    if data is None:
        return None
    try:
        loads(data)
    except Exception:
        return None
    return data


def loads(data: bytes) -> Any:
    """What :func:`dumps` kept; raises ``pickle.UnpicklingError`` (or what unpickling raised)."""
    return _Unpickler(io.BytesIO(data)).load()
