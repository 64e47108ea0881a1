"""The Airflow operators the compiler places. Thin: step semantics live in ``runtime/``."""

from __future__ import annotations

from airflow_openflow.operators.invalid import InvalidFlowOperator
from airflow_openflow.operators.result import FlowResultOperator
from airflow_openflow.operators.step import OpenFlowStepOperator

__all__ = ["FlowResultOperator", "InvalidFlowOperator", "OpenFlowStepOperator"]
