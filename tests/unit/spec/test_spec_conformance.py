"""Every document of the shared conformance corpus loads without errors or warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_openflow.spec import check_supported, load_flow
from airflow_openflow.spec.model import all_modules
from tests.corpus import case_files, missing_message

CASES = case_files()


def test_the_corpus_is_there() -> None:
    assert CASES, missing_message()


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_conformance_document_loads(case: Path) -> None:
    document = json.loads(case.read_text(encoding="utf-8"))["flow"]
    loaded = load_flow(document)
    assert loaded.warnings == []
    flow = loaded.flow
    assert flow.summary == document["summary"]
    assert len(flow.value.modules) == len(document["value"]["modules"])
    ids = [m.id for m in all_modules(flow)]
    assert len(ids) == len(set(ids))
    for problem in check_supported(flow):  # may reject control flow, but never crashes
        assert problem.message.startswith(("not supported yet: ", "not supported: "))
