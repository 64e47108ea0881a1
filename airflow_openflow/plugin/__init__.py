"""The Airflow plugin of airflow-openflow: the approvals endpoint, mounted in the API server.

Every Airflow process loads plugins (a worker too, at each task start), so the FastAPI app is
imported only when the API server asks for it.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin


class OpenFlowPlugin(AirflowPlugin):
    """Mounts the approvals app (``plugin/approvals_api.py``) in the API server under ``/openflow``.

    Registered through the ``airflow.plugins`` entry point; no configuration.
    """

    name = "openflow"

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from airflow_openflow.plugin.approvals_api import app

        return [{"app": app, "url_prefix": "/openflow", "name": "OpenFlow approvals"}]
