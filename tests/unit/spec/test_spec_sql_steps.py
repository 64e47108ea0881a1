"""SQL steps at load time: accepted when the Airflow provider is installed, refused naming the pip
package when it is not (checked without importing the provider or Airflow)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from spec_helpers import by_path, flow, step

from airflow_openflow.spec import check_supported, load_flow
from airflow_openflow.spec import languages as languages_module
from airflow_openflow.spec.model import RawScript
from airflow_openflow.spec.scripts import with_scripts_inlined

SQL = {"postgresql": "-- $1 name\nSELECT $1::text AS name", "mysql": "-- ? name (text)\nSELECT ? AS name"}


@pytest.fixture
def providers_absent(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(languages_module, "_installed", lambda distribution: False)
    yield


@pytest.mark.parametrize("language", ["postgresql", "mysql"])
def test_sql_steps_load_when_the_provider_is_installed(language: str) -> None:
    assert check_supported(load_flow(flow(step("a", SQL[language], language=language))).flow) == []


@pytest.mark.parametrize(
    ("language", "package", "extra"),
    [
        ("postgresql", "apache-airflow-providers-postgres", "postgres"),
        ("mysql", "apache-airflow-providers-mysql", "mysql"),
    ],
)
def test_a_sql_step_without_its_provider_is_refused_naming_the_package(
    providers_absent: None, language: str, package: str, extra: str
) -> None:
    found = by_path(check_supported(load_flow(flow(step("a", SQL[language], language=language))).flow))
    problem = found["value.modules[0].value.language"]
    assert problem.severity == "error"
    assert f"{language} steps need the Airflow provider {package}" in problem.message
    assert f"pip install 'airflow-openflow[{extra}]'" in problem.message


def _repo(tmp_path: Path) -> Path:
    (tmp_path / "f" / "db").mkdir(parents=True)
    (tmp_path / "f" / "db" / "count.pg.sql").write_text("-- $1 t\nSELECT count(*) AS n FROM people\n")
    folder = tmp_path / "f" / "app" / "main.flow"
    folder.mkdir(parents=True)
    (folder / "flow.yaml").write_text(
        "summary: sql by path\nvalue:\n  modules:\n    - id: a\n      value:\n        type: script\n"
        "        path: f/db/count\n        input_transforms: {}\n"
    )
    return folder


def test_a_sql_script_by_path_takes_its_language_from_the_suffix(tmp_path: Path) -> None:
    loaded = load_flow(_repo(tmp_path)).flow
    assert check_supported(loaded) == []
    value = with_scripts_inlined(loaded).value.modules[0].value
    assert isinstance(value, RawScript) and value.language == "postgresql"


def test_a_sql_script_by_path_without_its_provider_is_refused(tmp_path: Path, providers_absent: None) -> None:
    [problem] = check_supported(load_flow(_repo(tmp_path)).flow)
    assert problem.severity == "error" and "apache-airflow-providers-postgres" in problem.message


def test_the_check_imports_neither_the_provider_nor_airflow() -> None:
    code = (
        "import sys; from airflow_openflow.spec.languages import missing_runtime; "
        "assert missing_runtime('postgresql') is None and missing_runtime('mysql') is None; "
        "assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules), 'airflow'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_building_the_dag_of_a_sql_flow_touches_no_provider_driver_or_database(tmp_path: Path) -> None:
    # Airflow's own provider discovery imports each provider's ``get_provider_info``: not ours.
    folder = _repo(tmp_path)
    code = (
        "import sys; from airflow_openflow import load_openflow_dags; "
        "dags = load_openflow_dags(sys.argv[1], strict=True); assert len(dags) == 1, dags; "
        "loaded = [m for m in sys.modules if m.startswith(('airflow.providers.postgres.hooks', "
        "'airflow.providers.mysql.hooks', 'psycopg', 'MySQLdb', 'mysql.connector', 'asyncpg'))]; "
        "assert not loaded, loaded"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert folder.exists()
