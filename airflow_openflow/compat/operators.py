"""How Airflow's operator metaclass calls an operator's ``__init__`` (checked on Airflow 3.3.2)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any


def drop_inherited_params(kwargs: MutableMapping[str, Any]) -> None:
    """Remove from an operator's keyword arguments the ``params`` that Airflow put there.

    Why: ``BaseOperatorMeta._apply_defaults`` (``airflow/sdk/bases/operator.py``, not public)
    wraps the ``__init__`` of every class in an operator's hierarchy. Each wrapper merges the
    DAG's ``params`` (``get_merged_defaults``) with the task's and, when the result is not empty,
    passes it as the ``params`` keyword, whether or not the DAG file passed any. An operator that
    gives its parent a ``params`` of its own (``StepApprovalOperator``: the HITL form) then gets
    ``params`` in ``**kwargs`` as soon as the DAG has params (a flow with an input ``schema``) and
    calls its parent with ``params`` twice: ``TypeError: ... got multiple values for keyword
    argument 'params'``. Dropping it loses nothing: the parent's own wrapper merges the DAG's
    params in again, and a running task sees them through the DAG (``process_params``).

    Public replacement: none; an operator's signature could name ``params`` to take it, which
    relies on the same behaviour.
    """
    kwargs.pop("params", None)
