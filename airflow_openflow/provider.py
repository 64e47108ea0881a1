"""Provider metadata read by Airflow's provider manager (``airflow providers list``)."""

from __future__ import annotations

from typing import Any

from airflow_openflow.version import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-openflow",
        "name": "OpenFlow",
        "description": "Runs Windmill OpenFlow workflow documents as native Airflow DAGs.",
        "versions": [__version__],
    }
