"""Windmill's script languages: their names, their git-sync file suffixes and whether this release
runs them. The one table the loader (spec/support.py, spec/scripts.py) and the docs read.

Suffixes follow Windmill's CLI (``inferContentTypeFromFilePath``): the most specific suffix wins
(``.bun.ts`` before ``.ts``); a plain ``.ts`` file is the workspace's ``defaultTs`` language
(``wmill.yaml``), ``bun`` when it is not set.

This module imports nothing of Airflow.
"""

from __future__ import annotations

import functools
import importlib.metadata
import shutil
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Language:
    #: Windmill's language id, as in a rawscript's ``language``.
    name: str
    #: File suffixes of the git-sync layout, most specific first.
    suffixes: tuple[str, ...]
    #: This release runs steps in this language.
    runs: bool
    #: What a worker needs to run it (docs/languages.md), or why it does not run.
    needs: str = ""
    #: A program that must be on the PATH (of the process loading the flow and of the worker).
    tool: str = ""
    #: The pip distribution a step of this language needs on the worker (an Airflow provider); the
    #: loader refuses the step when it is not installed (spec/support.py).
    requires: str | None = None
    #: The ``pip install`` extra of airflow-openflow that brings ``requires``.
    extra: str | None = None


LANGUAGES: Final[tuple[Language, ...]] = (
    Language("python3", (".py",), runs=True, needs="the Airflow worker's Python"),
    Language("bash", (".sh",), runs=True, needs="/bin/bash"),
    Language("deno", (".deno.ts",), runs=True, needs="deno: pip install 'airflow-openflow[typescript]'"),
    Language("bun", (".bun.ts",), runs=True, needs="bun: pip install 'airflow-openflow[typescript]'"),
    Language(
        "nativets",
        (".fetch.ts", ".native.ts"),
        runs=True,
        needs="deno (or bun when deno is missing): pip install 'airflow-openflow[typescript]'",
    ),
    Language(
        "go", (".go",), runs=True, needs="the Go toolchain ('go' on the PATH; Debian: golang-go)", tool="go"
    ),
    Language(
        "postgresql",
        (".pg.sql",),
        runs=True,
        needs="the Airflow postgres provider (PostgresHook)",
        requires="apache-airflow-providers-postgres",
        extra="postgres",
    ),
    Language(
        "mysql",
        (".my.sql",),
        runs=True,
        needs="the Airflow mysql provider (MySqlHook)",
        requires="apache-airflow-providers-mysql",
        extra="mysql",
    ),
    Language("bigquery", (".bq.sql",), runs=False),
    Language("snowflake", (".sf.sql",), runs=False),
    Language("mssql", (".ms.sql",), runs=False),
    Language("oracledb", (".odb.sql",), runs=False),
    Language("duckdb", (".duckdb.sql",), runs=False),
    Language("graphql", (".gql",), runs=False),
    Language("powershell", (".ps1",), runs=False),
    Language("php", (".php",), runs=False),
    Language("rust", (".rs",), runs=False),
    Language("csharp", (".cs",), runs=False),
    Language("nu", (".nu",), runs=False),
    Language("java", (".java",), runs=False),
    Language("ruby", (".rb",), runs=False),
    Language("ansible", (".playbook.yml", ".playbook.yaml"), runs=False),
)

#: Windmill's default language of a plain ``.ts`` file when ``wmill.yaml`` sets no ``defaultTs``.
DEFAULT_TS: Final = "bun"

BY_NAME: Final[dict[str, Language]] = {language.name: language for language in LANGUAGES}

#: Languages whose steps are SQL run through an Airflow provider's hook (runtime/scripts/sql.py).
SQL_LANGUAGES: Final = frozenset({"postgresql", "mysql"})


def runnable_languages() -> tuple[str, ...]:
    """The languages this release runs, in the table's order."""
    return tuple(language.name for language in LANGUAGES if language.runs)


def language_of_file(file_name: str, *, default_ts: str = DEFAULT_TS) -> str | None:
    """The language of a git-sync script file (``name.bun.ts``, ``name.pg.sql``), None when the
    file is no script (``name.script.yaml``, ``name.lock``...)."""
    if ".script." in file_name:
        return None
    best: tuple[int, str] | None = None
    for language in LANGUAGES:
        for suffix in language.suffixes:
            longer = best is None or len(suffix) > best[0]
            if longer and file_name.endswith(suffix) and len(file_name) > len(suffix):
                best = (len(suffix), language.name)
    if best is not None:
        return best[1]
    if file_name.endswith(".ts") and len(file_name) > 3:
        return default_ts
    return None


def missing_runtime(language: str) -> str | None:
    """Why a language this release runs cannot run here, else None: its program is not on the
    PATH, or the pip package its steps need is not installed. Checked when a flow loads
    (spec/support.py), so that the DAG says what to install."""
    return _missing_tool(language) or _missing_requirement(language)


def runtime_fingerprint() -> str:
    """Which languages this release runs can run here (the load-time checks' answers): a flow's
    load result cached on disk is valid only where the answers are the same (spec/parse_cache.py)."""
    return ",".join(
        f"{entry.name}:{int(missing_runtime(entry.name) is None)}" for entry in LANGUAGES if entry.runs
    )


def _missing_tool(language: str) -> str | None:
    entry = BY_NAME.get(language)
    if entry is None or not entry.tool or shutil.which(entry.tool) is not None:
        return None
    return f"language {language!r} needs {entry.needs}, and {entry.tool!r} is not on the PATH"


def _missing_requirement(language: str) -> str | None:
    """``X steps need the Airflow provider <package>...`` when the pip package that steps of
    ``language`` need is not installed, else None. Reads the installed distributions' metadata:
    nothing is imported (the check runs at DAG-parse time and in ``airflow-openflow validate``,
    where Airflow may be absent)."""
    entry = BY_NAME.get(language)
    if entry is None or entry.requires is None or _installed(entry.requires):
        return None
    return (
        f"{language} steps need the Airflow provider {entry.requires}, which is not installed on this "
        f"machine: pip install 'airflow-openflow[{entry.extra}]' (or pip install {entry.requires})"
    )


@functools.cache
def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def unsupported_language_message(language: str) -> str:
    """``language X is not supported; supported: ...`` (the same words everywhere)."""
    known = "" if language in BY_NAME else " (not a Windmill language)"
    return f"language {language!r}{known} is not supported; supported: {', '.join(runnable_languages())}"
