""" "Did you mean ...?" for a misspelt name (a step type, a language, a field, a step id), from the
names that would have been right. ``difflib`` only: no Airflow, nothing slow.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

#: How alike a name must be to be suggested (``difflib`` ratio; ``rawscrip`` -> ``rawscript``: 0.94,
#: ``pyhton3`` -> ``python3``: 0.86, ``totl`` -> ``total``: 0.89).
CUTOFF = 0.7
#: Other names are suggested too when they are nearly as close as the best one.
NEARLY = 0.05


def close_names(
    word: str, candidates: Iterable[str], *, limit: int = 3, aliases: Mapping[str, str] | None = None
) -> list[str]:
    """The candidates closest to ``word``, best first: one that differs only in case, an alias
    (``{"typescript": "bun"}``), then the ``difflib`` matches nearly as close as the best one.
    Empty when none is close enough, or when ``word`` is itself a candidate."""
    names = sorted({c for c in candidates if isinstance(c, str) and c})
    if not isinstance(word, str) or not word or word in names:
        return []
    lower = word.lower()
    found = [c for c in names if c.lower() == lower]
    alias = (aliases or {}).get(lower)
    if alias is not None:
        found.append(alias)
    by_case = {c.lower(): c for c in names}
    scored = sorted(
        ((difflib.SequenceMatcher(None, lower, c).ratio(), c) for c in by_case), key=lambda x: (-x[0], x[1])
    )
    if scored and scored[0][0] >= CUTOFF:
        best = scored[0][0]
        found += [by_case[c] for ratio, c in scored if ratio >= max(CUTOFF, best - NEARLY)]
    return list(dict.fromkeys(found))[:limit]


def did_you_mean(
    word: str, candidates: Iterable[str], *, limit: int = 3, aliases: Mapping[str, str] | None = None
) -> str:
    """``did you mean 'rawscript'?`` (``'a' or 'b'`` for several), or ``""`` when nothing is close."""
    found = close_names(word, candidates, limit=limit, aliases=aliases)
    if not found:
        return ""
    quoted = [repr(name) for name in found]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"did you mean {listed}?"


#: Names people write for a Windmill language: ``typescript`` is Windmill's ``bun`` (its default for
#: TypeScript) or ``deno``.
LANGUAGE_ALIASES: dict[str, str] = {
    "typescript": "bun",
    "ts": "bun",
    "javascript": "bun",
    "js": "bun",
    "sh": "bash",
    "shell": "bash",
    "sql": "postgresql",
    "py": "python3",
}


def language_suggestion(language: str) -> str:
    """``did you mean 'python3'?`` for a name that is no Windmill language, from every language of
    Windmill's (spec/languages.py, run here or not); ``""`` for a Windmill language or no guess."""
    from airflow_openflow.spec.languages import BY_NAME

    return did_you_mean(language, BY_NAME, aliases=LANGUAGE_ALIASES) if language not in BY_NAME else ""
