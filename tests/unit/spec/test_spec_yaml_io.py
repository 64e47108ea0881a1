"""``load_yaml`` builds plain documents itself (``_PlainNodes``) and leaves the rest to PyYAML's
constructor: both ways must give the same value, or the same error, as ``FlowYamlLoader`` alone."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from airflow_openflow.spec import yaml_io
from airflow_openflow.spec.bounds import DocumentTooComplexError
from airflow_openflow.spec.yaml_io import FlowYamlLoader, load_yaml

DOCUMENTS = [
    "summary: s\nvalue:\n  modules:\n    - id: a\n      value: {type: identity}\n",
    "a: 1\nb: [1, -2, 2.5, 1e3, .inf, -.inf, true, False, null, ~, '', '3', 0o17, 0x1f, 007]\n",
    "yes: no\non: off\nd: 2024-01-01\nt: 1:30\nu: 1_000\n",  # YAML 1.1 forms stay strings
    "c: !inline x.py\nd: '!inline y.py'\n",
    "d: &x {k: [1, 2]}\ne: *x\nf: &s text\ng: *s\n",
    "base: &b {a: 1, b: 2}\nderived:\n  <<: *b\n  b: 3\n",  # a merge key: PyYAML's constructor
    "a: !!binary aGk=\nb: !!str 12\nc: !!float 1\nd: !!int '7'\n",
    "1: one\n2.5: two\nnull: three\ntrue: four\n",
    "{1: a, true: b}",
    "",
    "# only a comment\n",
    "- [a, b]\n- {c: d}\n- - nested\n",
]

ERRORS = [
    "a: 1\na: 2\n",  # duplicate key
    "? [1]\n: 2\n",  # unhashable key
    "a: !inline [x]\n",  # !inline of a list
    "a: !!bool maybe\n",
    "a: !unknown x\n",
    "a: [\n",
]


def _pyyaml(text: str) -> Any:
    loader = FlowYamlLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@pytest.mark.parametrize("text", DOCUMENTS)
def test_same_value_as_pyyamls_constructor(text: str) -> None:
    assert repr(load_yaml(text)) == repr(_pyyaml(text))


@pytest.mark.parametrize("text", ERRORS)
def test_same_error_as_pyyamls_constructor(text: str) -> None:
    with pytest.raises(Exception) as ours:
        load_yaml(text)
    with pytest.raises(Exception) as theirs:
        _pyyaml(text)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


def test_a_duplicate_key_names_both_lines() -> None:
    with pytest.raises(yaml.YAMLError, match=r"duplicate key 'a' \(first at line 1, again at line 3\)"):
        load_yaml("a: 1\nb: 2\na: 3\n")


def test_plain_documents_do_not_reach_pyyamls_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_: Any, **__: Any) -> Any:
        raise AssertionError("PyYAML's constructor was used")

    monkeypatch.setattr(FlowYamlLoader, "construct_document", refused)
    assert load_yaml(DOCUMENTS[0])["value"]["modules"][0]["id"] == "a"
    with pytest.raises(AssertionError, match="constructor was used"):
        load_yaml(DOCUMENTS[5])  # the merge key goes the general way


def test_aliases_still_count_towards_the_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("airflow_openflow.spec.bounds.MAX_NODES", 50)
    bomb = "a: &a [1, 2, 3, 4, 5, 6, 7, 8]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b]\n"
    with pytest.raises(DocumentTooComplexError):
        load_yaml(bomb)
    assert yaml_io._PlainNodes  # the builder under test is the one load_yaml uses
