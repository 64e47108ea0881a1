"""The package registers as an Airflow provider (``airflow providers list`` shows it)."""

from __future__ import annotations


def test_airflow_lists_the_provider() -> None:
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers
    assert "airflow-openflow" in providers
    info = providers["airflow-openflow"]
    assert info.version == "0.1.0"
    assert "OpenFlow" in info.data["description"]
