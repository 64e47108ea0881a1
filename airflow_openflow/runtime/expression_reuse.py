"""Reused QuickJS contexts for expressions (used by runtime/expression_engine.py).

A fresh context costs more than the whole evaluation of a typical expression (~0.1 ms to create,
and compiling the prelude in it several times that), so an expression that qualifies runs in a
context kept per thread and set up once (expression_reuse.js): everything reachable from the global
object, and the prototypes only syntax reaches (iterators, generators, async functions), is frozen;
the global object's own properties are read-only; ``eval`` and ``FinalizationRegistry`` throw. The
prelude (expression_prelude.js) is compiled once there, and each distinct body once (kept frozen).
Nothing an expression does can change what the next one finds:

* it cannot change a built-in object (frozen) nor a built-in global (read-only);
* the names a pass adds to the global object are deleted after the pass, and the global object
  must then have the same number of own properties, the same prototype and still be extensible
  (a global made by assigning an undeclared name, for instance): otherwise the context is
  discarded;
* ``eval`` is the only way to declare a global binding outside the global object (``var`` / ``let``
  in an indirect eval), a FinalizationRegistry callback the only way to run code after the pass:
  both throw;
* the job queue is drained before the outcome is read; a pass that fails in the engine itself
  (time limit, memory limit, an uncaught job, anything the binding raises) discards the context.

Freezing is observable: in a fresh context ``Object.prototype.toJSON = f`` changes the expression's
value, in a frozen one it throws or silently does nothing. So that a reused context gives the value
a fresh one gives:

* only an expression that :func:`assigned_names` accepts runs there: a conservative scan of its
  text that refuses whatever could change or inspect built-ins, or swallow the error such a change
  raises (assignments to members, ``delete``, ``try``, promises and ``async``, ``this``, ``eval``,
  ``constructor`` / ``prototype`` / ``__proto__``, property descriptors, ``Reflect``, escapes,
  ...), and one that assigns a name that is a built-in global (read-only there);
* the outcome of a reused context is taken only when the expression *succeeded* (or read a value
  not fetched yet); any error, time-out or unsettled promise runs the pass again in a fresh
  context, whose outcome is the one reported, within what is left of the time budget. So a change
  to a built-in that the scan did not see (through property names computed at run time, say
  ``Object.assign([][a][b], ...)`` with ``a``, ``b`` from the input) throws in the reused context
  and the expression gets the value of a fresh one.

What remains different: code that reaches a built-in through names computed at run time *and*
only looks whether it is frozen, or swallows the error of changing it without ``try`` / promises,
could tell; ``Math.random`` continues one sequence instead of starting a new one. Neither lets one
evaluation change what another sees: the freezing and the checks above hold on their own.
"""

from __future__ import annotations

import json
import re
import threading
from functools import lru_cache
from importlib import resources
from typing import Any, Final

from airflow_openflow.spec.js_text import code_chars

_REUSE_JS: Final = (
    resources.files("airflow_openflow.runtime").joinpath("expression_reuse.js").read_text(encoding="utf-8")
)

# Names that make an expression run in a fresh context: whatever reaches the global object, the
# prototypes or property descriptors, changes objects other than by declaration, catches errors or
# defers them to promises, or depends on the context's history (stack traces, clocks since start).
_DENY: Final = frozenset(
    {"this", "arguments", "eval", "Function", "globalThis", "self", "constructor", "prototype"}
    | {"__proto__", "super", "Reflect", "Proxy", "getPrototypeOf", "setPrototypeOf", "defineProperty"}
    | {"defineProperties", "getOwnPropertyDescriptor", "getOwnPropertyDescriptors", "isFrozen"}
    | {"isSealed", "isExtensible", "preventExtensions", "__defineGetter__", "__defineSetter__"}
    | {"__lookupGetter__", "__lookupSetter__", "call", "apply", "bind", "caller", "callee"}
    | {"try", "catch", "finally", "then", "async", "Promise", "fromAsync", "waitAsync", "import"}
    | {"AsyncDisposableStack", "DisposableStack", "using", "WeakRef", "FinalizationRegistry"}
    | {"with", "delete", "stack", "captureStackTrace", "prepareStackTrace", "stackTraceLimit"}
    | {"performance", "queueMicrotask", "setTimeout"}
)
_DECLARE: Final = frozenset({"const", "let", "var"})
_ASSIGN: Final = frozenset(
    {"=", "+=", "-=", "*=", "/=", "%=", "**=", "<<=", ">>=", ">>>=", "&=", "|=", "^=", "&&=", "||=", "??="}
)
_UPDATE: Final = frozenset({"++", "--"})
_MEMBER: Final = frozenset({".", "?."})
_TOKEN = re.compile(
    r"[^\W\d][\w$]*|\$[\w$]*|\d\w*(?:\.\w*)?|\.\d\w*"
    r"|>>>=|\.\.\.|\?\?=|\*\*=|<<=|>>=|>>>|&&=|\|\|=|===|!==|\?\.|=>|==|!=|<=|>=|\+\+|--"
    r"|\+=|-=|\*=|/=|%=|&=|\|=|\^=|\*\*|&&|\|\||\?\?|<<|>>|\S"
)
_QUOTED = re.compile(
    r""""((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'|`((?:[^`\\$]|\\.|\$(?!\{))*)(?:`|\$\{)"""
)


def _is_name(token: str) -> bool:
    return token[:1].isalpha() or token[:1] in ("_", "$")


def _quoted_texts(src: str, code: set[int]) -> list[str]:
    """The text of string literals and template chunks (what a computed member name may spell)."""
    texts: list[str] = []
    i, n = 0, len(src)
    while i < n:
        if i in code or src[i].isspace():
            i += 1
            continue
        j = i
        while j < n and j not in code:
            j += 1
        texts.extend(next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(src, i, j))
        i = j
    return texts


@lru_cache(maxsize=2048)
def assigned_names(src: str) -> frozenset[str] | None:
    """None if ``src`` must run in a fresh context, else the bare names it assigns (other than in a
    declaration): the caller refuses those that are built-in globals (read-only when reused)."""
    chars = [" "] * len(src)
    code: set[int] = set()
    for i, c in code_chars(src):
        if c == "\\":
            return None  # an escape in code can spell any name (``\u0065val``)
        chars[i] = c
        code.add(i)
    for text in _quoted_texts(src, code):
        if "\\" in text and re.search(r"\\[xu0-9]", text):
            return None
        if re.sub(r"\\(.)", r"\1", text) in _DENY or text in _DENY:
            return None
    tokens = _TOKEN.findall("".join(chars))
    assigned: set[str] = set()
    opener: dict[int, int] = {}
    stack: list[int] = []
    for k, tok in enumerate(tokens):
        if tok in "([{":
            stack.append(k)
        elif tok in ")]}" and stack:
            opener[k] = stack.pop()
    for k, tok in enumerate(tokens):
        prev = tokens[k - 1] if k > 0 else ""
        before = tokens[k - 2] if k > 1 else ""
        after = tokens[k + 1] if k + 1 < len(tokens) else ""
        if _is_name(tok):
            if tok in _DENY:
                return None
            if tok == "for":  # ``for (x of y)`` assigns x: only declarations, or ``for (;``
                at = k + 2 if after == "(" else k + 3
                if at >= len(tokens) or (tokens[at] not in _DECLARE and tokens[at] != ";"):
                    return None
        elif tok in _ASSIGN:
            if prev in ("}", "]"):  # a destructuring declaration: ``const {a, b} = x``
                start = opener.get(k - 1)
                if start is None or start == 0 or tokens[start - 1] not in _DECLARE:
                    return None
            elif _is_name(prev) and before not in _MEMBER:
                if before not in _DECLARE:
                    assigned.add(prev)
            else:
                return None
        elif tok in _UPDATE:
            postfix = _is_name(prev) and before not in _MEMBER
            nxt = tokens[k + 2] if k + 2 < len(tokens) else ""
            prefix = _is_name(after) and nxt not in (".", "?.", "[", "(")
            if postfix == prefix:  # neither, or ambiguous (``a \n ++b``)
                return None
            assigned.add(prev if postfix else after)
    return frozenset(assigned)


# ---------------------------------------------------------------------------------------------
# The context of this thread (the binding must not use one runtime from two threads)


class WarmContext:
    """A QuickJS context hardened for reuse (expression_reuse.js), with the prelude compiled."""

    def __init__(self, prelude: str, stack_bytes: int) -> None:
        import quickjs  # lazily: never at DAG-parse time

        self.context_type = quickjs.Context
        self.ctx = quickjs.Context()
        self.ctx.set_max_stack_size(stack_bytes)
        names = self.ctx.eval("JSON.stringify(Reflect.ownKeys(globalThis).map(String))")
        self.global_names: frozenset[str] = frozenset(json.loads(names))
        self.reuse: Any = self.ctx.eval(_REUSE_JS)  # hardens the context
        self.prelude: Any = self.ctx.eval(prelude)  # compiled once, called per pass

    def start(self, input_text: str) -> Any:
        """Begin a pass: the scope names are set, the expression started; returns the function
        that reports the outcome once the job queue is drained (and removes the names again)."""
        return self.prelude(self.reuse, input_text)


_local = threading.local()


def warm_context(prelude: str, stack_bytes: int) -> WarmContext | None:
    """This thread's reused context (created on first use); None if it cannot be created."""
    import quickjs

    warm: WarmContext | None = getattr(_local, "warm", None)
    if warm is not None and warm.context_type is quickjs.Context:
        return warm
    try:
        warm = WarmContext(prelude, stack_bytes)
    except Exception:
        warm = None
    _local.warm = warm
    return warm


def discard(warm: WarmContext) -> None:
    """Drop this thread's reused context (the next reusable expression gets a new one)."""
    if getattr(_local, "warm", None) is warm:
        _local.warm = None
