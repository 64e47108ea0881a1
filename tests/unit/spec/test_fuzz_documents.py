"""Property-based fuzzing of the loader: any document, however broken or hostile, becomes a DAG or
the placeholder DAG naming its file; the loader never raises, never reads outside the workspace.

``make test`` runs a bounded number of examples; ``make fuzz`` runs many more
(``OPENFLOW_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("OPENFLOW_FUZZ_EXAMPLES", "120"))
SECRET = "OPENFLOW_FUZZ_SECRET_7781"

# Step ids that collide with what the compiler derives from other ids, and plain ones.
IDS = st.one_of(
    st.sampled_from(
        [
            "a",
            "b",
            "l",
            "l_items",
            "b_choose",
            "b_branch_0",
            "b_branch_1",
            "flow_result",
            "skip_expr",
            "a_approval",
            "a_sleep",
            "flow_cache",
            "failure",
            "preprocessor",
            "x-y",
            "",
            "a.b",
        ]
    ),
    st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
)
HOSTILE_PATHS = st.sampled_from(
    [
        "f/lib/ok",
        "f/lib/missing",
        "../outside/secret",
        "/etc/passwd",
        "{outside}/secret",
        "",
        "/",
        ".",
        "hub/1/x/y",
        "f/../../outside/secret",
        "f/lib/ok/../../../outside/secret",
        "u/me/flow",
    ]
)
INLINE_REFS = st.sampled_from(
    [
        "!inline ok.py",
        "!inline ../outside/secret.py",
        "!inline /proc/self/environ",
        "!inline /dev/zero",
        "!inline {outside}/secret.py",
        "!inline missing.py",
        "!inline ",
        "!inline ok.py\x00x",
    ]
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False), st.text(max_size=12)
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a value of the right type (so later stages get exercised), sometimes anything."""
    return st.one_of(valid, valid, valid, valid, SCALARS)


BOOL = mostly(st.booleans())
NUMBER = mostly(st.integers(0, 30))
EXPRESSIONS = st.one_of(
    st.sampled_from(
        [
            "flow_input.x",
            "results.a",
            "result",
            "[1, 2, 3]",
            "flow_input.iter.value",
            "(",
            "}{",
            "`${results.a}`",
            "return 1;",
            "Object.prototype.toJSON = () => 1",
            "while(true){}",
            "'" * 3,
        ]
    ),
    st.text(max_size=20),
)


def _json(depth: int = 2) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=depth * 4,
    )


TRANSFORM = st.one_of(
    st.builds(lambda v: {"type": "static", "value": v}, _json()),
    st.builds(lambda e: {"type": "javascript", "expr": e}, EXPRESSIONS),
    st.builds(lambda e: {"type": "javascript", "expr": e}, EXPRESSIONS),
    _json(),
)
TRANSFORMS = st.dictionaries(st.sampled_from(["x", "n", "items", "", "a b"]), TRANSFORM, max_size=3)


def _script_value() -> st.SearchStrategy[dict[str, Any]]:
    raw = st.fixed_dictionaries(
        {
            "type": st.just("rawscript"),
            "language": st.sampled_from(["python3", "bash", "deno", "bun", "nu", "go", "", "python3"]),
            "content": st.one_of(
                st.sampled_from(
                    ["def main(x=1):\n    return x\n", "echo hi", "def main(:", 'x="$1"\necho $x']
                ),
                INLINE_REFS,
                st.text(max_size=30),
            ),
            "input_transforms": TRANSFORMS,
        }
    )
    by_path = st.fixed_dictionaries(
        {"type": st.sampled_from(["script", "flow"]), "path": HOSTILE_PATHS, "input_transforms": TRANSFORMS}
    )
    identity = st.just({"type": "identity"})
    return st.one_of(raw, by_path, identity)


def _module(children: st.SearchStrategy[list[dict[str, Any]]]) -> st.SearchStrategy[dict[str, Any]]:
    container = st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.just("forloopflow"),
                "iterator": TRANSFORM,
                "modules": children,
                "skip_failures": BOOL,
                "parallel": BOOL,
            }
        ),
        st.fixed_dictionaries({"type": st.just("whileloopflow"), "modules": children}),
        st.fixed_dictionaries(
            {
                "type": st.just("branchone"),
                "branches": st.lists(
                    st.fixed_dictionaries({"expr": EXPRESSIONS, "modules": children}), max_size=2
                ),
                "default": children,
            }
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("branchall"),
                "branches": st.lists(st.fixed_dictionaries({"modules": children}), max_size=3),
                "parallel": st.booleans(),
            }
        ),
    )
    optional = st.fixed_dictionaries(
        {},
        optional={
            "summary": st.text(max_size=20),
            "suspend": st.fixed_dictionaries(
                {}, optional={"required_events": mostly(st.integers(-2, 3)), "timeout": NUMBER}
            ),
            "sleep": TRANSFORM,
            "retry": st.fixed_dictionaries(
                {}, optional={"constant": st.fixed_dictionaries({"attempts": NUMBER, "seconds": NUMBER})}
            ),
            "stop_after_if": st.fixed_dictionaries({"expr": EXPRESSIONS}, optional={"skip_if_stopped": BOOL}),
            "stop_after_all_iters_if": st.fixed_dictionaries({"expr": EXPRESSIONS}),
            "timeout": TRANSFORM,
            "cache_ttl": NUMBER,
            "continue_on_error": BOOL,
            "skip_if": st.fixed_dictionaries({"expr": EXPRESSIONS}),
        },
    )
    return st.builds(
        lambda ident, value, extra: {"id": ident, "value": value, **extra},
        IDS,
        st.one_of(_script_value(), container),
        optional,
    )


MODULES = st.recursive(
    st.lists(_module(st.just([])), max_size=3),
    lambda inner: st.lists(_module(inner), max_size=3),
    max_leaves=8,
)
SCHEMA = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"type": st.just("object")},
        optional={
            "properties": st.one_of(
                st.dictionaries(
                    st.sampled_from(["x", "n", "items"]),
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "type": st.sampled_from(["string", "integer", "strnig", "array", "object"]),
                            "default": _json(),
                            "pattern": st.sampled_from(["^a", "(", "[a-"]),
                            "minimum": st.one_of(st.integers(), st.just("five")),
                            "$ref": st.sampled_from(["#/definitions/x", "#/$defs/nowhere", "http://x"]),
                        },
                    ),
                    max_size=3,
                ),
                SCALARS,
            ),
            "required": st.one_of(st.lists(st.sampled_from(["x", "n", "z"]), max_size=2), SCALARS),
            "definitions": st.just({"x": {"type": "string"}}),
        },
    ),
)
DOCUMENT = st.fixed_dictionaries(
    {"summary": st.text(max_size=20), "value": st.fixed_dictionaries({"modules": MODULES})},
    optional={"schema": SCHEMA, "description": st.text(max_size=20)},
).flatmap(
    lambda doc: st.fixed_dictionaries(
        {},
        optional={
            "failure_module": _module(st.just([])),
            "preprocessor_module": _module(st.just([])),
            "skip_expr": EXPRESSIONS,
            "same_worker": BOOL,
        },
    ).map(lambda extra: {**doc, "value": {**doc["value"], **extra}})
)


@st.composite
def document_texts(draw: st.DrawFn) -> tuple[str, str]:
    """(file name, text): a generated document as JSON or YAML, sometimes mutated as text."""
    document = draw(DOCUMENT)
    fmt = draw(st.sampled_from(["json", "yaml"]))
    text = json.dumps(document, indent=1) if fmt == "json" else yaml.safe_dump(document, sort_keys=False)
    mutation = draw(st.sampled_from(["none", "none", "none", "cut", "duplicate", "insert"]))
    if mutation != "none" and text:
        start = draw(st.integers(0, len(text) - 1))
        end = draw(st.integers(start, min(len(text), start + 40)))
        if mutation == "cut":
            text = text[:start] + text[end:]
        elif mutation == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        else:
            text = (
                text[:start]
                + draw(st.sampled_from(["[", "{", "&a ", "*a", ": ", "\t", "- ", '"', "\x00"]))
                + text[start:]
            )
    return f"fuzzed.{fmt}", text


@pytest.fixture(scope="module")
def workspace() -> Iterator[Path]:
    """``<tmp>/repo`` holding a script and an inline file; a secret in ``<tmp>/outside``."""
    base = Path(tempfile.mkdtemp(prefix="openflow-fuzz-"))
    (base / "outside").mkdir()
    (base / "outside" / "secret.py").write_text(f"def main():\n    return '{SECRET}'\n")
    (base / "outside" / "secret.yaml").write_text(f"summary: {SECRET}\nvalue:\n  modules: []\n")
    (base / "repo" / "f" / "lib").mkdir(parents=True)
    (base / "repo" / "f" / "lib" / "ok.py").write_text("def main(x=1):\n    return x\n")
    (base / "repo" / "ok.py").write_text("def main(x=1):\n    return x\n")
    yield base
    shutil.rmtree(base, ignore_errors=True)


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # no timing assertion: pytest-timeout is the hang guard
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    database=None,
)
@given(document_texts())
def test_any_document_becomes_a_dag_or_a_placeholder_naming_its_file(
    workspace: Path, named_text: tuple[str, str]
) -> None:
    from airflow_openflow import load_openflow_dags
    from airflow_openflow.spec import discover_flows

    name, text = named_text
    text = text.replace("{outside}", str(workspace / "outside"))
    folder = workspace / "repo"
    for old in folder.glob("fuzzed.*"):
        old.unlink()
    # Named as a plain document, deciding whether it is a flow must never raise either.
    (folder / name).write_text(text, encoding="utf-8", errors="surrogatepass")
    discover_flows(folder)
    (folder / name).unlink()
    # Named as a git-sync flow (``fuzzed.flow.json``), it is a flow whatever it holds.
    name = name.replace("fuzzed.", "fuzzed.flow.")
    (folder / name).write_text(text, encoding="utf-8", errors="surrogatepass")

    dags = load_openflow_dags(folder)  # must never raise

    assert list(dags) == ["fuzzed"], dags
    dag = dags["fuzzed"]
    shown = [dag.doc_md or "", dag.description or "", *(t.doc_md or "" for t in dag.tasks)]
    assert not any(SECRET in text for text in shown), "a file outside the workspace reached the DAG"
    invalid = "openflow-invalid" in dag.tags
    if invalid:
        assert str(folder / name) in dag.doc_md
        assert ": error: " in dag.doc_md, dag.doc_md  # a Problem, not an internal exception
    # `validate` says ok exactly for the documents the DAG file builds.
    from airflow_openflow.cli import EXIT_INVALID, EXIT_OK, main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(["validate", "--quiet", str(folder)])
    assert code == (EXIT_INVALID if invalid else EXIT_OK), err.getvalue()
