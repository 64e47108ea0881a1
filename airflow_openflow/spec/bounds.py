"""Limits on the shape of a flow document, checked before anything walks it deeply.

The DAG processor parses every flow of a folder in one process, under Airflow's import timeout: a
document must not be able to crash that process (libyaml's composer recurses in C, so 50 000
nested lists overflow the stack), nor take it past the timeout or out of memory (a YAML alias bomb:
a few anchors whose aliases expand to millions of nodes when the document is walked).
"""

from __future__ import annotations

from typing import Any

#: Deepest nesting of lists and objects in a document. Real flows stay far below (a step inside
#: ten nested loops and branches is about 40 levels); the C and Python parsers stay far above.
MAX_DEPTH = 128
#: Most list items and object entries of a document once YAML aliases are expanded (a 10 000-step
#: flow has about 200 000).
MAX_NODES = 2_000_000


class DocumentTooComplexError(ValueError):
    """The document is nested too deeply or expands to too many nodes."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def yaml_may_be_too_deep(text: str) -> bool:
    """A cheap upper bound: whether ``text`` could nest deeper than :data:`MAX_DEPTH`.

    Each level of YAML block nesting takes at least one more column on the line of the deepest
    node, and each level of flow nesting takes a ``[`` or ``{``; so the depth is at most the
    longest line plus the number of brackets. When that bound is under the limit, the exact (and
    slower) check of :func:`yaml_depth_exceeds` is not needed.
    """
    return text.count("[") + text.count("{") + _longest_line(text) >= MAX_DEPTH


def _longest_line(text: str) -> int:
    return max(map(len, text.splitlines()), default=0)


def yaml_depth_exceeds(text: str, loader: Any) -> int | None:
    """The 1-based line where the YAML event stream first nests deeper than :data:`MAX_DEPTH`, or
    None. Iterates over parser events (no recursion, no node tree), so it is safe on any input;
    syntax errors are left to the real parse."""
    import yaml

    depth = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return int(event.start_mark.line) + 1 if event.start_mark else 0
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


def check_size(data: Any) -> None:
    """Raise :class:`DocumentTooComplexError` when ``data`` nests deeper than :data:`MAX_DEPTH` or,
    with shared (aliased) parts counted each time they appear, holds more than :data:`MAX_NODES`
    items. A recursive structure (``&a [*a]``) is too deep. Iterative, and linear in the distinct
    objects: each shared part is measured once."""
    measured: dict[int, tuple[int, int]] = {}  # id -> (expanded size, height) of a finished object
    # Frames of a post-order walk: (object, its depth, whether its children are measured).
    stack: list[tuple[Any, int, bool]] = [(data, 1, False)]
    while stack:
        obj, depth, children_done = stack.pop()
        if not isinstance(obj, (dict, list)):
            continue
        children = [
            c for c in (obj.values() if isinstance(obj, dict) else obj) if isinstance(c, (dict, list))
        ]
        if children_done:
            size = len(obj) + 1 + sum(measured[id(c)][0] - 1 for c in children)
            height = 1 + max((measured[id(c)][1] for c in children), default=0)
            if size > MAX_NODES:
                raise DocumentTooComplexError(
                    f"the document expands to more than {MAX_NODES:,} values (YAML aliases repeat "
                    "what they point at): make it smaller"
                )
            measured[id(obj)] = (size, height)
            continue
        known = measured.get(id(obj))
        if depth + (known[1] - 1 if known else 0) > MAX_DEPTH:
            raise DocumentTooComplexError(
                f"the document nests lists and objects deeper than {MAX_DEPTH} levels (or refers to itself)"
            )
        if known is not None:
            continue
        stack.append((obj, depth, True))
        stack.extend((child, depth + 1, False) for child in children)
