"""Document -> Airflow DAG objects, at parse time."""

from __future__ import annotations

from airflow_openflow.compile.flow import build_dag
from airflow_openflow.compile.naming import dag_id_for_document, dag_id_for_path

__all__ = ["build_dag", "dag_id_for_document", "dag_id_for_path"]
