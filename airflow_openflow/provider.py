"""Provider metadata read by Airflow's provider manager (``airflow providers list``).

``config`` declares the ``[openflow]`` section, so ``airflow config list`` shows its options with
their descriptions and defaults. Each default is what the code falls back to when the option is
unset (``tests/unit/test_provider.py`` compares them).
"""

from __future__ import annotations

from typing import Any

from airflow_openflow.version import __version__

#: Windmill's public hub (also ``runtime.hub.DEFAULT_HUB_URL``; kept here so this module imports
#: nothing of the package's runtime).
_DEFAULT_HUB_URL = "https://hub.windmill.dev"
#: What ``wmill.get_workspace()`` answers when ``[openflow] workspace`` is unset.
DEFAULT_WORKSPACE = "airflow"


def _option(description: str, *, example: str | None, default: str | None) -> dict[str, Any]:
    return {
        "description": description,
        "version_added": "0.1.0",
        "type": "string",
        "example": example,
        "default": default,
    }


CONFIG: dict[str, Any] = {
    "openflow": {
        "description": "Options of airflow-openflow, the provider that runs Windmill OpenFlow "
        "documents as Airflow DAGs. Read on the workers (and, for hub_url, by "
        "``airflow-openflow hub pull``).\n",
        "options": {
            "shared_directory_base": _option(
                "Where each DAG run's ``./shared`` folder (a flow's ``same_worker``) is kept, as "
                "an Airflow object-storage URL or a local path: "
                "``<base>/<dag_id>/<run_id>/``. Empty: "
                "``file://$AIRFLOW_HOME/openflow/shared``, created when missing. A configured "
                "base is never created: a missing one fails the step with "
                "``SharedDirectoryError``. Every worker must reach it (S3 through the amazon "
                "provider: ``s3://aws_default@bucket/prefix``).\n",
                example="s3://aws_default@my-bucket/openflow/shared",
                default="",
            ),
            "workspace": _option(
                "The workspace name scripts see from ``wmill.get_workspace()`` (and ``WM_WORKSPACE``).\n",
                example="my-team",
                default=DEFAULT_WORKSPACE,
            ),
            "hub_url": _option(
                "The Windmill Hub that steps download hub scripts (``hub/<id>/<app>/<name>``) "
                "from when they are not vendored next to the flow; also what "
                "``airflow-openflow hub pull`` downloads from without ``--hub-url``. A private "
                "hub: its URL.\n",
                example="https://hub.internal.example.com",
                default=_DEFAULT_HUB_URL,
            ),
            "hub_cache_dir": _option(
                "Where downloaded hub scripts are kept, per user the task runs as. Empty: "
                "``$XDG_CACHE_HOME/airflow-openflow/hub``, else "
                "``~/.cache/airflow-openflow/hub``.\n",
                example="/var/cache/airflow-openflow/hub",
                default="",
            ),
            "parse_cache": _option(
                "Whether ``load_openflow_dags`` keeps each flow's load result and built DAG on disk "
                "and reuses them while nothing they were made from changed (the DAG processor "
                "re-parses every flow every ``min_file_process_interval``). ``False``: every parse "
                "loads and builds every flow.\n",
                example="False",
                default="True",
            ),
            "parse_cache_dir": _option(
                "Where the parse cache keeps its entries (pickles: a folder only the user Airflow "
                "runs as may write to; created with mode 0700). Several DAG processors may share "
                "it. Empty: ``$XDG_CACHE_HOME/airflow-openflow/parse``, else "
                "``~/.cache/airflow-openflow/parse``.\n",
                example="/var/cache/airflow-openflow/parse",
                default="",
            ),
        },
    }
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-openflow",
        "name": "OpenFlow",
        "description": "Runs Windmill OpenFlow workflow documents as native Airflow DAGs.",
        "versions": [__version__],
        "config": CONFIG,
    }
