"""Reused QuickJS contexts (runtime/expression_reuse.py): one expression never changes what the next
one sees, limits still stop runaway code, and values are those a fresh context gives."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_openflow.runtime import expression_reuse
from airflow_openflow.runtime.errors import ExpressionError
from airflow_openflow.runtime.expression_engine import _PRELUDE, _STACK_BYTES
from airflow_openflow.runtime.expressions import EvalScope, evaluate, evaluate_predicate


def scope(flow_input: Any = None, results: dict[str, Any] | None = None) -> EvalScope:
    values = results or {}
    return EvalScope(
        flow_input={} if flow_input is None else flow_input,
        previous_result=None,
        results=values.get,
    )


def warm() -> expression_reuse.WarmContext:
    context = expression_reuse.warm_context(_PRELUDE, _STACK_BYTES)
    assert context is not None
    return context


# (expression that changes the realm, its own value as in a fresh context, a later expression, the
# value that later expression has in a fresh context)
MUTATIONS = [
    ("(Array.prototype.map = null, typeof [].map)", "object", "typeof [].map", "function"),
    ("(globalThis.x = 1, x)", 1, "typeof x", "undefined"),
    ("(x = 2, x)", 2, "typeof x", "undefined"),
    ("(Object.prototype.polluted = 1, ({}).polluted)", 1, "({}).polluted", None),
    ("(Math.max = () => 7, Math.max(1, 2))", 7, "Math.max(1, 2)", 2),
    ("Object.assign(Math, {pi: 3}).pi", 3, "Math.pi", None),
    ("(JSON.stringify = null, Array = null, 1)", 1, "JSON.stringify([1]) + typeof Array", "[1]function"),
    ("((0, eval)('var leaked = 5'), leaked)", 5, "typeof leaked", "undefined"),
    ("(Object.defineProperty(globalThis, 'fixed', {value: 1}), fixed)", 1, "typeof fixed", "undefined"),
    ("(Object.setPrototypeOf(globalThis, null), 1)", 1, "typeof toString", "function"),
    (
        "Object.freeze(Object.prototype) === Object.prototype",
        True,
        "Object.isFrozen(Object.prototype)",
        False,
    ),
    (
        "(Object.getPrototypeOf([].values()).next = () => ({done: true}), [...[1, 2].values()])",
        [],
        "[...[1, 2].values()]",
        [1, 2],
    ),
    (
        "(Object.getPrototypeOf(async function () {}).extra = 1, (async () => {}).extra)",
        1,
        "(async () => {}).extra",
        None,
    ),
    ("(delete Array.prototype.map, typeof [].map)", "undefined", "typeof [].map", "function"),
]


@pytest.mark.parametrize(("change", "value", "later", "later_value"), MUTATIONS)
def test_changes_to_globals_and_prototypes_do_not_reach_the_next_evaluation(
    change: str, value: Any, later: str, later_value: Any
) -> None:
    assert evaluate(later, scope()) == later_value
    assert evaluate(change, scope()) == value
    assert evaluate(later, scope()) == later_value
    assert evaluate(later, scope()) == later_value  # and in the reused context, if it was discarded


# Changes the scan cannot see (names computed at run time): the frozen context refuses them, and the
# evaluation runs again in a fresh context, whose value it reports.
COMPUTED = [
    "Object.assign([][flow_input.c][flow_input.p], {polluted: 1}).polluted",
    "[][flow_input.c][flow_input.p][flow_input.m](1)",  # Array.prototype.push on Array.prototype
    "Object.assign(({})[flow_input.c][flow_input.p], {polluted: 1}).polluted",
]


@pytest.mark.parametrize("expr", COMPUTED)
def test_changes_through_computed_names_get_the_value_of_a_fresh_context(expr: str) -> None:
    names = {"c": "constructor", "p": "prototype", "m": "push"}
    assert expression_reuse.assigned_names(expr) is not None  # the scan lets it through
    assert evaluate(expr, scope(names)) == 1
    assert evaluate("[].polluted ?? ({}).polluted ?? [].length", scope()) == 0
    assert evaluate("Array.prototype.length", scope()) == 0


# The global object, reached through the Function constructor by computed names.
GLOBAL = "[][flow_input.c][flow_input.c]('return this')()"


@pytest.mark.parametrize(
    ("expr", "value", "later", "later_value"),
    [
        (f"Object.assign({GLOBAL}, {{added: 1}}).added", 1, "typeof added", "undefined"),
        (f"{GLOBAL}[flow_input.e]('var declared = 2')", None, "typeof declared", "undefined"),
        (f"({GLOBAL}[flow_input.e]('var declared = 2'), declared)", 2, "typeof declared", "undefined"),
        ("[][flow_input.c][flow_input.c]('undeclared = 3')()", None, "typeof undeclared", "undefined"),
    ],
)
def test_the_global_object_reached_by_computed_names_stays_as_it_was(
    expr: str, value: Any, later: str, later_value: Any
) -> None:
    names = {"c": "constructor", "e": "eval"}
    assert expression_reuse.assigned_names(expr) is not None
    assert evaluate(expr, scope(names)) == value
    assert evaluate(later, scope()) == later_value
    assert evaluate(later, scope()) == later_value


def test_a_reusable_expression_runs_in_the_thread_s_reused_context() -> None:
    assert evaluate("1 + 1", scope()) == 2
    first = warm()
    assert evaluate("[1, 2, 3].map(x => x * 2)", scope()) == [2, 4, 6]
    assert warm() is first
    assert evaluate("flow_input.a + 1", scope({"a": 1})) == 2
    assert evaluate("typeof flow_input", scope()) == "object"
    assert warm() is first  # the names of one evaluation were removed again


def test_runaway_expressions_are_stopped_and_the_next_one_works() -> None:
    assert expression_reuse.assigned_names("let n = 0; while (true) { n++ }") == frozenset({"n"})
    with pytest.raises(ExpressionError) as info:
        evaluate("let n = 0; while (true) { n++ }", scope(), time_limit_s=0.3)
    assert info.value.name == "ExpressionTimeout"
    assert evaluate("[1, 2].map(x => x + 1)", scope()) == [2, 3]
    with pytest.raises(ExpressionError) as info:
        evaluate(
            "let a = []; while (true) { a.push('x'.repeat(1000) + a.length) }",
            scope(),
            memory_limit_bytes=16 * 1024 * 1024,
            time_limit_s=5,
        )
    assert info.value.name == "ExpressionMemoryLimit"
    assert evaluate("'x'.repeat(3).length", scope()) == 3
    assert evaluate("'x'.repeat(1 << 20).length", scope()) == 1 << 20


def test_errors_are_those_of_a_fresh_context() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("results.a.b.c", scope(results={"a": {}}))
    assert info.value.name == "TypeError"
    assert "results.a.b.c" in str(info.value)
    assert evaluate("eval('1 + 1')", scope()) == 2  # the scan sends it to a fresh context
    with pytest.raises(ExpressionError) as info:
        evaluate("nope + 1", scope())
    assert info.value.name == "ReferenceError"
    assert evaluate_predicate("results.a.n > 1", scope(results={"a": {"n": 2}})) is True


def test_hidden_intrinsics_are_frozen_in_the_reused_context() -> None:
    reached = [
        "Object.prototype", "Array.prototype", "Function.prototype", "Object.getPrototypeOf([].values())",
        "Object.getPrototypeOf(Object.getPrototypeOf([].values()))",
        "Object.getPrototypeOf(new Map().entries())", "Object.getPrototypeOf(new Set().values())",
        "Object.getPrototypeOf(''[Symbol.iterator]())", "Object.getPrototypeOf('a'.matchAll(/a/g))",
        "Object.getPrototypeOf(async function () {})", "Object.getPrototypeOf(function* () {})",
        "Object.getPrototypeOf(async function* () {})",
        "Object.getPrototypeOf(Object.getPrototypeOf((function* () {})()))",
        "Object.getPrototypeOf(Object.getPrototypeOf((async function* () {})()))",
        "Object.getPrototypeOf(Object.getPrototypeOf(Object.getPrototypeOf((async function* () {})())))",
        "Object.getPrototypeOf([].values().map(x => x))", "Object.getPrototypeOf(Uint8Array)",
        "Object.getPrototypeOf(Uint8Array.prototype)", "Math", "JSON", "Reflect", "Atomics",
        "Object.getOwnPropertyDescriptor(Function.prototype, 'caller').get", "Array.prototype.map",
        "Array.prototype[Symbol.unscopables]", "Iterator.prototype", "Error", "Error.prototype",
    ]  # fmt: skip
    ctx = warm().ctx
    for expr in reached:
        assert ctx.eval(f"Object.isFrozen({expr})") is True, expr
    assert ctx.eval("Object.isExtensible(globalThis)") is True
    assert ctx.eval("Object.getOwnPropertyDescriptor(globalThis, 'Array').writable") is False


def test_each_thread_has_its_own_context() -> None:
    outcome: list[Any] = []
    contexts: list[Any] = []

    def work() -> None:
        outcome.append(evaluate("[1, 2].map(x => x * 3)", scope()))
        contexts.append(warm())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert outcome == [[3, 6]]
    assert contexts[0] is not warm()


@pytest.mark.parametrize(
    "expr",
    [
        "results.order.items.map(i => i.price * i.qty).reduce((sum, x) => sum + x, 0)",
        "results.order.total > 10 && flow_input.vip",
        "`${flow_input.first} ${flow_input.last}`",
        "const {a, b} = flow_input; let s = 0; for (const x of [a, b]) s += x; return s",
        "for (let i = 0; i < 3; i++) {}; return 1",
        "({...flow_input, n: Object.keys(flow_input).length})",
        "results['a'].b",
        "function f(x) { return x + 1 } return f(1)",
    ],
)
def test_the_scan_accepts_typical_expressions(expr: str) -> None:
    assert expression_reuse.assigned_names(expr) is not None


@pytest.mark.parametrize(
    "expr",
    [
        "this",
        "a.b = 1",
        "a[0] = 1",
        "a.b++",
        "++a[0]",
        "[a, b] = [b, a]",
        "delete a.b",
        "try { x } catch (e) { 1 }",
        "p.then(x => x)",
        "(async () => 1)()",
        "Promise.resolve(1)",
        "x.constructor",
        "x['constructor']",
        "x['const\\u0072uctor']",
        "\\u0065val('1')",
        "Object.getPrototypeOf(x)",
        "Reflect.ownKeys(x)",
        "for (x of [1]) {}",
        "new Error().stack",
        "f.call(null, 1)",
    ],
)
def test_the_scan_refuses_what_could_change_or_inspect_built_ins(expr: str) -> None:
    assert expression_reuse.assigned_names(expr) is None


def test_assigning_a_built_in_global_name_runs_in_a_fresh_context() -> None:
    assert expression_reuse.assigned_names("Array = 1, typeof Array") == frozenset({"Array"})
    assert evaluate("(Array = 1, typeof Array)", scope()) == "number"
    assert evaluate("typeof Array", scope()) == "function"


@pytest.mark.parametrize("mib", [15, 16, 17, 20, 32])
def test_running_out_of_memory_is_the_memory_limit_whatever_the_limit(mib: int) -> None:
    # With too little memory left to make the error object, QuickJS throws null instead.
    with pytest.raises(ExpressionError) as info:
        evaluate(
            "let a = []; while (true) { a.push('x'.repeat(1000) + a.length) }",
            scope(),
            memory_limit_bytes=mib * 1024 * 1024,
        )
    assert info.value.name == "ExpressionMemoryLimit"


def test_a_thrown_null_is_still_an_error() -> None:
    for expr in ("throw null", "await Promise.reject(null)"):
        with pytest.raises(ExpressionError) as info:
            evaluate(expr, scope())
        assert (info.value.name, info.value.message) == ("Error", "null")
