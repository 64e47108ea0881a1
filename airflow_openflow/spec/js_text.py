"""JavaScript source as text: which characters are code (not strings, template text, comments or
regular expressions). No JavaScript engine: the runtime uses it to tell an expression from a
function body, the loader to catch unbalanced brackets and unterminated literals before any run.

One scanner (:func:`code_chars`) serves both, so they agree on what a string or a comment is.
Where JavaScript is ambiguous without a parser (``/`` as a division or as a regex literal) the
scanner guesses as the engine usually reads it; the syntax check only reports what is certainly
wrong under that reading.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

# Characters after which ``/`` starts a regular expression literal rather than a division.
REGEX_PRECEDERS: Final = frozenset("(,=:[!&|?{};+-*%<>~^")
# Keywords after which ``/`` starts a regular expression literal (``return /x/.test(s)``).
REGEX_AFTER_WORDS: Final = frozenset(
    {"return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case", "do", "else"}
    | {"yield", "await"}
)
_CLOSERS: Final = {")": "(", "]": "[", "}": "{"}


def _is_ident_char(c: str) -> bool:
    return c.isalnum() or c in "_$"


def skip_trivia(src: str, i: int = 0) -> int:
    """Index of the first character after whitespace and comments."""
    n = len(src)
    while i < n:
        if src[i].isspace():
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j + 1
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            break
    return i


def end_of_quoted(src: str, i: int) -> tuple[int, bool]:
    """``src[i]`` opens a '...' or "..." string: (index just past its end, whether it is closed).
    A string ends at its quote; a line break (not escaped) or the end of the text leaves it open."""
    quote, n = src[i], len(src)
    i += 1
    while i < n:
        c = src[i]
        if c == "\\":
            i += 2
            continue
        i += 1
        if c == quote:
            return i, True
        if c == "\n":
            return i, False
    return min(i, n), False


def end_of_regex(src: str, i: int) -> int:
    """``src[i]`` is ``/`` opening a regex literal: index just past the closing ``/`` (or i+1)."""
    n, j, in_class = len(src), i + 1, False
    while j < n:
        c = src[j]
        if c == "\\":
            j += 2
            continue
        if c == "\n":
            return i + 1  # not a regex after all
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "/":
            return j + 1
        j += 1
    return i + 1


def _starts_regex(src: str, prev: str, prev_at: int) -> bool:
    """Whether a ``/`` after the significant character ``prev`` (at ``prev_at``) opens a regex."""
    if prev == "":
        return True
    if prev in "+-" and prev_at > 0 and src[prev_at - 1] == prev:
        return False  # ``i++ / 2``
    if prev in REGEX_PRECEDERS:
        return True
    if not _is_ident_char(prev):
        return False
    start = prev_at
    while start > 0 and _is_ident_char(src[start - 1]):
        start -= 1
    if start > 0 and src[start - 1] == ".":
        return False  # ``x.return / 2`` is a property
    return src[start : prev_at + 1] in REGEX_AFTER_WORDS


def code_chars(src: str, unterminated: list[tuple[str, int]] | None = None) -> Iterator[tuple[int, str]]:
    """``(index, character)`` of every non-blank character of ``src`` that is code: outside strings,
    template literal text, comments and regex literals. Template interpolations are code again, to
    any depth: their ``${`` is reported as ``{`` and their closing ``}`` as ``}``.

    Literals and comments that never end are appended to ``unterminated`` as ``(kind, index)``,
    kind being ``string``, ``template literal`` or ``comment``.
    """
    i, n = 0, len(src)
    depth = 0  # brace depth in code
    interpolations: list[int] = []  # depth at which each open ``${`` started
    template_start: list[int] = []  # where each template literal being read started
    in_template = False
    prev, prev_at = "", -1  # last significant code character, to tell a regex from a division
    while i < n:
        c = src[i]
        if in_template:
            if c == "\\":
                i += 2
            elif c == "`":
                template_start.pop()
                in_template, prev, prev_at = False, "`", i
                i += 1
            elif c == "$" and src.startswith("{", i + 1):
                interpolations.append(depth)
                depth += 1
                in_template, prev, prev_at = False, "{", i + 1
                yield i + 1, "{"
                i += 2
            else:
                i += 1
            continue
        if c in "'\"":
            end, closed = end_of_quoted(src, i)
            if not closed and unterminated is not None:
                unterminated.append(("string", i))
            i, prev, prev_at = end, c, end - 1
            continue
        if c == "`":
            in_template = True
            template_start.append(i)
            i += 1
            continue
        if src.startswith("//", i) or src.startswith("/*", i):
            if unterminated is not None and src.startswith("/*", i) and src.find("*/", i + 2) < 0:
                unterminated.append(("comment", i))
            i = skip_trivia(src, i)
            continue
        if c == "/" and _starts_regex(src, prev, prev_at):
            end = end_of_regex(src, i)
            i, prev, prev_at = end, "/", end - 1
            continue
        if c == "}":
            depth -= 1
            if interpolations and depth == interpolations[-1]:
                interpolations.pop()
                in_template = True
                yield i, "}"
                i += 1
                continue
        elif c == "{":
            depth += 1
        if not c.isspace():
            prev, prev_at = c, i
            yield i, c
        i += 1
    if template_start and unterminated is not None:  # still in its text or in one of its ${...}
        unterminated.append(("template literal", template_start[0]))


def has_code_semicolon(src: str) -> bool:
    """True if ``src`` has a ``;`` outside strings, template literal text, comments and regexes."""
    return any(c == ";" for _, c in code_chars(src))


#: Text with no quote, template, comment, regex nor bracket: nothing ``syntax_problem`` can find.
_NO_LITERALS_NOR_BRACKETS = re.compile(r"[\w$.?\s]*")


def syntax_problem(src: str) -> tuple[str, int] | None:
    """What is certainly wrong with ``src`` as JavaScript, found without parsing it: a string,
    template literal or comment that never ends, or brackets that do not pair up. Returns
    ``(message, index)`` of the first problem, or None."""
    if _NO_LITERALS_NOR_BRACKETS.fullmatch(src):  # most expressions: `previous_result`, `a.b`
        return None
    unterminated: list[tuple[str, int]] = []
    stack: list[tuple[str, int]] = []
    mismatch: tuple[str, int] | None = None
    for i, c in code_chars(src, unterminated):
        if c in "([{":
            stack.append((c, i))
        elif c in _CLOSERS and mismatch is None:
            if not stack:
                mismatch = (f"'{c}' closes nothing", i)
            elif stack[-1][0] != _CLOSERS[c]:
                opened, at = stack[-1]
                mismatch = (f"'{c}' does not close the '{opened}' opened at {where(src, at)}", i)
            else:
                stack.pop()
    if unterminated:  # an open literal makes every later bracket suspect: report it first
        kind, at = min(unterminated, key=lambda item: item[1])
        return f"the {kind} is never closed", at
    if mismatch is not None:
        return mismatch
    if stack:
        opened, at = stack[-1]
        return f"'{opened}' is never closed", at
    return None


def where(src: str, index: int) -> str:
    """``line L, column C`` of ``index`` in ``src`` (1-based)."""
    line = src.count("\n", 0, index) + 1
    column = index - (src.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"
