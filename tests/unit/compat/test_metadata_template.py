"""A new SQLite metadata database starts as a copy of a per-Airflow-version template."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

CREATE = "from airflow_openflow.compat.metadata import create_metadata_db\ncreate_metadata_db()\n"


def _create(home: Path, templates: Path | str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", OPENFLOW_DB_TEMPLATE_DIR=str(templates)
    )
    subprocess.run(
        [sys.executable, "-c", CREATE], env=env, check=True, capture_output=True, timeout=600, cwd=home.parent
    )


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as connection:
        return {row[0] for row in connection.execute("select name from sqlite_master where type='table'")}


def test_the_first_database_becomes_the_template_of_the_next(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    _create(tmp_path / "one", templates)
    (template,) = templates.iterdir()  # one file: no partial copies left
    assert template.name.startswith("airflow-") and template.suffix == ".db"
    assert {"dag_run", "task_instance", "xcom", "alembic_version"} <= _tables(template)
    _create(tmp_path / "two", templates)
    assert _tables(tmp_path / "two" / "airflow.db") == _tables(tmp_path / "one" / "airflow.db")


def test_no_template_when_the_directory_setting_is_empty(tmp_path: Path) -> None:
    _create(tmp_path / "home", "")
    assert "dag_run" in _tables(tmp_path / "home" / "airflow.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
