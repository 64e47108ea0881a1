"""The OpenFlow document: typed model, loading, validation. Imports neither Airflow nor a JS engine."""

from __future__ import annotations

from airflow_openflow.spec.discover import discover_flows
from airflow_openflow.spec.errors import FlowDocumentError, Problem
from airflow_openflow.spec.loader import LoadedFlow, load_flow
from airflow_openflow.spec.model import OpenFlow
from airflow_openflow.spec.support import check_supported, prepare_flow
from airflow_openflow.spec.validate import validate_flow

__all__ = [
    "FlowDocumentError",
    "LoadedFlow",
    "OpenFlow",
    "Problem",
    "check_supported",
    "discover_flows",
    "load_flow",
    "prepare_flow",
    "validate_flow",
]
