"""The language table: git-sync file names to Windmill languages (Windmill CLI's rules)."""

from __future__ import annotations

import pytest

from airflow_openflow.spec.languages import BY_NAME, LANGUAGES, language_of_file, runnable_languages


@pytest.mark.parametrize(
    ("file_name", "language"),
    [
        ("a.py", "python3"),
        ("a.sh", "bash"),
        ("a.bun.ts", "bun"),
        ("a.deno.ts", "deno"),
        ("a.fetch.ts", "nativets"),
        ("a.ts", "bun"),
        ("a.pg.sql", "postgresql"),
        ("a.my.sql", "mysql"),
        ("a.bq.sql", "bigquery"),
        ("a.go", "go"),
        ("a.nu", "nu"),
        ("a.ps1", "powershell"),
        ("a.playbook.yml", "ansible"),
        ("a.script.yaml", None),
        ("a.script.lock", None),
        ("a.sql", None),
        (".py", None),
    ],
)
def test_language_of_file(file_name: str, language: str | None) -> None:
    assert language_of_file(file_name) == language


def test_plain_ts_takes_the_workspace_default() -> None:
    assert language_of_file("a.ts", default_ts="deno") == "deno"
    assert language_of_file("a.bun.ts", default_ts="deno") == "bun"


def test_table_is_consistent() -> None:
    assert len(BY_NAME) == len(LANGUAGES)
    assert runnable_languages()[:2] == ("python3", "bash")
    suffixes = [suffix for language in LANGUAGES for suffix in language.suffixes]
    assert len(suffixes) == len(set(suffixes))
