"""load_openflow_dags with the parse cache (``[openflow] parse_cache``): the DAG processor's re-parse
reuses each unchanged flow's load result, an edited script is in the next parse's DAG, and the
cache can be turned off."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_openflow import load_openflow_dags

FLOW = """\
summary: cached
value:
  modules:
    - id: a
      value:
        type: rawscript
        language: python3
        content: '!inline a.inline_script.py'
        input_transforms: {}
"""


def _flows(root: Path) -> Path:
    folder = root / "flows" / "f" / "app" / "cached.flow"
    folder.mkdir(parents=True)
    (folder / "flow.yaml").write_text(FLOW)
    (folder / "a.inline_script.py").write_text("def main():\n    return 'first'\n")
    return root / "flows"


def _script_of(dags: dict[str, object]) -> str:
    (dag,) = dags.values()
    return str(dag.get_task("a").module.value.content)  # type: ignore[attr-defined]


def test_a_reparse_uses_the_cache_and_sees_an_edited_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("AIRFLOW__OPENFLOW__PARSE_CACHE_DIR", str(cache))
    flows = _flows(tmp_path)
    assert "first" in _script_of(load_openflow_dags(flows))
    (entry,) = cache.glob("*.pickle")
    written = entry.stat().st_mtime_ns
    assert "first" in _script_of(load_openflow_dags(flows))
    assert entry.stat().st_mtime_ns == written  # used, not written again

    (flows / "f/app/cached.flow/a.inline_script.py").write_text("def main():\n    return 'second'\n")
    assert "second" in _script_of(load_openflow_dags(flows))


def test_the_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("AIRFLOW__OPENFLOW__PARSE_CACHE_DIR", str(cache))
    monkeypatch.setenv("AIRFLOW__OPENFLOW__PARSE_CACHE", "False")
    assert "first" in _script_of(load_openflow_dags(_flows(tmp_path)))
    assert not cache.exists()
