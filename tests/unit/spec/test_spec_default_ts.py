"""A plain ``.ts`` workspace script is in the workspace's ``defaultTs`` language (wmill.yaml)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from airflow_openflow.spec.scripts import workspace_default_ts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defaultTs: deno\n", "deno"),
        ("defaultTs: bun\nincludes: ['f/**']\n", "bun"),
        ("includes: ['f/**']\n", "bun"),
        ("", "bun"),
        ("- a list\n", "bun"),
    ],
)
def test_default_ts_of_wmill_yaml(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "wmill.yaml").write_text(text)
    assert workspace_default_ts(tmp_path) == expected


def test_no_wmill_yaml_means_bun(tmp_path: Path) -> None:
    assert workspace_default_ts(tmp_path) == "bun"


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    marker = tmp_path / "wmill.yaml"
    marker.write_text("defaultTs: bun\n")
    assert workspace_default_ts(tmp_path) == "bun"
    marker.write_text("defaultTs: deno\n")  # another size: a new version of the file
    assert workspace_default_ts(tmp_path) == "deno"


@pytest.mark.parametrize(
    "text",
    ["defaultTs: python3\n", "defaultTs: [deno\n", "a: &a [*a]\n", "defaultTs: " + "x" * (2 << 20) + "\n"],
    ids=["not-a-ts-language", "broken-yaml", "recursive-alias", "too-large"],
)
def test_a_bad_wmill_yaml_falls_back_to_bun_with_a_warning(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "wmill.yaml").write_text(text)
    with caplog.at_level(logging.WARNING):
        assert workspace_default_ts(tmp_path) == "bun"
    assert "wmill.yaml" in caplog.text


def test_a_wmill_yaml_linking_outside_the_workspace_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("defaultTs: deno\n")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "wmill.yaml").symlink_to(outside)
    assert workspace_default_ts(root) == "bun"
