"""The package registers as an Airflow provider (``airflow providers list`` shows it)."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_airflow_lists_the_provider() -> None:
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers
    assert "airflow-openflow" in providers
    info = providers["airflow-openflow"]
    assert info.version == "0.1.0"
    assert "OpenFlow" in info.data["description"]


def _declared() -> dict[str, str]:
    from airflow_openflow.provider import get_provider_info

    options = get_provider_info()["config"]["openflow"]["options"]
    for name, option in options.items():  # the schema Airflow's own providers use
        assert set(option) == {"description", "version_added", "type", "example", "default"}, name
        assert option["description"].strip(), name
    return {name: option["default"] for name, option in options.items()}


def test_every_option_the_package_reads_is_declared() -> None:
    import re

    import airflow_openflow

    read: set[str] = set()
    for source in Path(airflow_openflow.__file__).parent.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        read |= set(re.findall(r'conf\.get(?:boolean)?\(\s*"openflow",\s*"(\w+)"', text))
        read |= set(re.findall(r'_config\("(\w+)"\)', text))  # runtime/hub.py
        read |= set(re.findall(r'^CONFIG_OPTION = "(\w+)"', text, re.M))  # runtime/shared_dir.py
    assert read == set(_declared())


def test_declared_defaults_are_what_the_code_falls_back_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.configuration import conf

    from airflow_openflow.runtime import hub, shared_dir
    from airflow_openflow.runtime.airflow_wmill import AirflowWmillBackend

    declared = _declared()
    # the provider's declared defaults are part of Airflow's configuration
    for name, default in declared.items():
        monkeypatch.delenv(f"AIRFLOW__OPENFLOW__{name.upper()}", raising=False)
        assert conf.get("openflow", name) == default
    home = tmp_path / "home"
    monkeypatch.setenv("AIRFLOW__CORE__AIRFLOW_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    assert declared["shared_directory_base"] == ""
    assert shared_dir.shared_base() == (home / "openflow" / "shared").as_uri()
    assert declared["hub_url"] == hub.DEFAULT_HUB_URL == hub.configured_hub_url()
    assert declared["hub_cache_dir"] == ""
    assert hub.hub_cache_dir() == tmp_path / "xdg" / "airflow-openflow" / "hub"
    backend = AirflowWmillBackend.__new__(AirflowWmillBackend)
    assert declared["workspace"] == "airflow" == backend.workspace
    # a set option wins
    monkeypatch.setenv("AIRFLOW__OPENFLOW__WORKSPACE", "team")
    assert AirflowWmillBackend.__new__(AirflowWmillBackend).workspace == "team"


def test_airflow_config_list_shows_the_section_with_descriptions_and_defaults(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__OPENFLOW__")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    airflow = Path(sys.executable).with_name("airflow")
    shown = subprocess.run(
        [str(airflow), "config", "list", "--section", "openflow", "--include-descriptions", "--show-values"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    assert "[openflow]" in shown
    for name, default in _declared().items():
        assert f"\n{name} = {default}\n" in shown, (name, shown)
    assert "# The Windmill Hub that steps download hub scripts" in shown
