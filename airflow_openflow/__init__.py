"""airflow-openflow: Windmill OpenFlow documents as native Apache Airflow DAGs.

Public surface: ``load_openflow_dags`` (for DAG files), ``run_flow`` and ``FlowOutcome`` (run one
flow through Airflow), ``load_flow`` / ``FlowDocumentError`` (the document layer). Importing this
package imports neither Airflow nor the JavaScript engine; each name loads its layer on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_openflow.version import __version__

if TYPE_CHECKING:
    from airflow_openflow.dag_factory import load_openflow_dags
    from airflow_openflow.runner import FlowInputError, FlowOutcome, run_flow
    from airflow_openflow.spec import FlowDocumentError, load_flow

__all__ = [
    "FlowDocumentError",
    "FlowInputError",
    "FlowOutcome",
    "__version__",
    "load_flow",
    "load_openflow_dags",
    "run_flow",
]

_LAZY = {
    "load_openflow_dags": "airflow_openflow.dag_factory",
    "run_flow": "airflow_openflow.runner",
    "FlowOutcome": "airflow_openflow.runner",
    "FlowInputError": "airflow_openflow.runner",
    "load_flow": "airflow_openflow.spec",
    "FlowDocumentError": "airflow_openflow.spec",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'airflow_openflow' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
