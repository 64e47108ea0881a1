"""OpenFlow JavaScript expressions (runtime/expressions.py): rules of spec §3 and the corpus."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_openflow.runtime.errors import ExpressionError, StepError
from airflow_openflow.runtime.expressions import (
    EvalScope,
    evaluate,
    evaluate_predicate,
    evaluate_transforms,
    resolve_static,
)
from airflow_openflow.spec.model import InputTransform


class Results:
    """A results lookup that records which ids were asked for."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.calls: list[str] = []

    def __call__(self, step_id: str) -> Any:
        self.calls.append(step_id)
        return self.values.get(step_id)


def scope(
    results: dict[str, Any] | Callable[[str], Any] | None = None,
    *,
    flow_input: Any = None,
    previous_result: Any = None,
    **kwargs: Any,
) -> EvalScope:
    lookup = results if callable(results) else Results(results or {})
    return EvalScope(
        flow_input={} if flow_input is None else flow_input,
        previous_result=previous_result,
        results=lookup,
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------
# The expressions of conformance cases 026, 029, 030, 031, 032, with the values the cases expect.

CASE_026_A = {"sum": 15, "product": 50, "items": [1, 2, 3, 4, 5]}
CASE_029_A = {"value": 10, "items": [1, 2, 3]}
CASE_029_B = {"value": 20, "sum": 6}
CASE_030_A = {
    "items": [
        {"id": 1, "name": "Item A", "price": 10, "qty": 2},
        {"id": 2, "name": "Item B", "price": 20, "qty": 3},
        {"id": 3, "name": "Item C", "price": 30, "qty": 1},
    ],
    "discount": 0.1,
    "tax_rate": 0.08,
}
CASE_032_A = {"greeting": "Hello World 🌍", "mixed": "café résumé naïve", "names": ["Alice", "Bob", "Carlos"]}

CORPUS_EXPRESSIONS = [
    # 026
    ("results.a.sum + results.a.product", {"a": CASE_026_A}, {"multiplier": 3}, None, 65),
    ("results.a.items.map(x => x * 2)", {"a": CASE_026_A}, {"multiplier": 3}, None, [2, 4, 6, 8, 10]),
    ("results.a.items.filter(x => x > 2)", {"a": CASE_026_A}, {"multiplier": 3}, None, [3, 4, 5]),
    ("flow_input.multiplier * results.a.sum", {"a": CASE_026_A}, {"multiplier": 3}, None, 45),
    # 029
    ("previous_result.value", {"a": CASE_029_A}, {}, CASE_029_A, 10),
    ("previous_result.items.reduce((a, b) => a + b, 0)", {"a": CASE_029_A}, {}, CASE_029_A, 6),
    ("results.a.value", {"a": CASE_029_A, "b": CASE_029_B}, {}, CASE_029_B, 10),
    ("results.b.value", {"a": CASE_029_A, "b": CASE_029_B}, {}, CASE_029_B, 20),
    ("results.b.sum", {"a": CASE_029_A, "b": CASE_029_B}, {}, CASE_029_B, 6),
    ("results.a.value + results.b.value + results.b.sum", {"a": CASE_029_A, "b": CASE_029_B}, {}, None, 36),
    # 030
    (
        "let items = results.a.items;\n"
        "let total = items.reduce((sum, item) => sum + (item.price * item.qty), 0);\n"
        "return total;",
        {"a": CASE_030_A},
        {},
        None,
        110,
    ),
    (
        "let items = results.a.items;\n"
        "let subtotal = items.reduce((sum, item) => sum + (item.price * item.qty), 0);\n"
        "let discount = results.a.discount;\n"
        "if (subtotal > 50) {\n  return subtotal * (1 - discount);\n} else {\n  return subtotal;\n}",
        {"a": CASE_030_A},
        {},
        None,
        99,
    ),
    (
        "const items = results.a.items;\nconst names = items.map(i => i.name);\n"
        "const total_qty = items.reduce((sum, i) => sum + i.qty, 0);\nreturn { names, total_qty };",
        {"a": CASE_030_A},
        {},
        None,
        {"names": ["Item A", "Item B", "Item C"], "total_qty": 6},
    ),
    (
        "try {\n  const items = results.a.items;\n  const tax_rate = results.a.tax_rate;\n"
        "  const subtotal = items.reduce((sum, item) => sum + (item.price * item.qty), 0);\n"
        "  return Math.round(subtotal * (1 + tax_rate) * 100) / 100;\n} catch (e) {\n  return 0;\n}",
        {"a": CASE_030_A},
        {},
        None,
        118.8,
    ),
    # 031
    ("results.a.value", {"a": {"value": 42}}, {}, None, 42),
    ("results.nonexistent", {"a": {"value": 42}}, {}, None, None),
    ("results.nonexistent ?? 'default_value'", {"a": {"value": 42}}, {}, None, "default_value"),
    ("results.nonexistent?.value ?? 'nested_default'", {"a": {"value": 42}}, {}, None, "nested_default"),
    # 032
    ("`Welcome: ${results.a.greeting}`", {"a": CASE_032_A}, {}, None, "Welcome: Hello World 🌍"),
    ("results.a.mixed.toUpperCase()", {"a": CASE_032_A}, {}, None, "CAFÉ RÉSUMÉ NAÏVE"),
    ("results.a.greeting.includes('World')", {"a": CASE_032_A}, {}, None, True),
    ("results.a.names[0]", {"a": CASE_032_A}, {}, None, "Alice"),
    ("results.a.names[2]", {"a": CASE_032_A}, {}, None, "Carlos"),
]


@pytest.mark.parametrize(("expr", "results", "flow_input", "previous", "expected"), CORPUS_EXPRESSIONS)
def test_corpus_expressions(
    expr: str, results: dict[str, Any], flow_input: Any, previous: Any, expected: Any
) -> None:
    value = evaluate(expr, scope(results, flow_input=flow_input, previous_result=previous))
    assert value == expected
    assert type(value) is type(expected) or isinstance(expected, (int, float))


def test_double_arithmetic_is_javascript() -> None:
    # 110 * (1 - 0.1) is 99 in JS doubles; the JSON value must compare equal to the integer 99
    assert evaluate("110 * (1 - 0.1)", scope()) == 99
    assert evaluate("0.1 + 0.2", scope()) == 0.30000000000000004
    assert evaluate("2 ** 53 - 1", scope()) == 9007199254740991


# ---------------------------------------------------------------------------------------------
# Expression vs. function body


def test_object_literal_without_parentheses() -> None:
    s = scope({"a": {"config": {"retries": 2}}})
    assert evaluate("{a: 1, b: 'x'}", s) == {"a": 1, "b": "x"}
    assert evaluate("{...results.a.config, timeout: 5000}", s) == {"retries": 2, "timeout": 5000}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("let x = 2\nreturn x * 3", 6),  # starts with a keyword, no semicolon
        ("const o = {a: 1}\nreturn o", {"a": 1}),
        ("var n = 1\nn++\nreturn n", 2),
        ("if (flow_input.n > 1) { return 'big' } else { return 'small' }", "big"),
        ("try { null.x } catch (e) { return e.name }", "TypeError"),
        ("for (const k of [1, 2]) { if (k == 2) return k }", 2),
        ("let s = 0; for (let i = 0; i < 4; i++) s += i; return s", 6),
        ("flow_input.n + 1;", None),  # a statement without return: undefined -> null (as Windmill)
        ("return flow_input.n", 5),
        ("switch (flow_input.n) { case 5: return 'five' }", "five"),
    ],
)
def test_function_bodies(expr: str, expected: Any) -> None:
    assert evaluate(expr, scope(flow_input={"n": 5})) == expected


def test_identifiers_that_start_like_keywords_stay_expressions() -> None:
    s = scope(extra={"doubled": 4, "letter": "a", "format_it": "x", "trying": True, "classes": [1]})
    assert evaluate("doubled + 1", s) == 5
    assert evaluate("letter.toUpperCase()", s) == "A"
    assert evaluate("trying && classes.length", s) == 1


@pytest.mark.parametrize(
    "expr",
    [
        "'a;b' + \"c;d\"",
        "`x;${flow_input.n};y`",
        "`outer ${`inner ${flow_input.n + ';'}`}`",
        "flow_input.n // trailing comment; with a semicolon",
        "/* a; comment */ flow_input.n",
        "/;/.test('a;b') ? flow_input.n : 0",
    ],
)
def test_semicolons_in_strings_comments_and_regexes_keep_expression_mode(expr: str) -> None:
    # In expression mode these return a value; as a function body they would return null.
    assert evaluate(expr, scope(flow_input={"n": 5})) is not None


def test_template_literals_and_unicode() -> None:
    s = scope({"a": {"name": "Zoë", "count": 3}}, flow_input={"name": "José 🚀"})
    assert (
        evaluate("`Hello, ${flow_input.name}! You have ${results.a.count} items.`", s)
        == "Hello, José 🚀! You have 3 items."
    )
    assert evaluate("results.a.name.toUpperCase() + '✓'", s) == "ZOË✓"
    assert evaluate("'😀'.length", s) == 2  # UTF-16, as in JS
    assert evaluate("[...'😀'].length", s) == 1


def test_undefined_and_functions_become_none() -> None:
    s = scope(flow_input={"a": 1})
    assert evaluate("undefined", s) is None
    assert evaluate("flow_input.missing", s) is None
    assert evaluate("(() => {})()", s) is None
    assert evaluate("() => 1", s) is None
    assert evaluate("{a: undefined, b: 1}", s) == {"b": 1}
    assert evaluate("", s) is None


def test_legacy_import_header_is_stripped() -> None:
    expr = "import { previous_result, flow_input, step, variable, resource, params } from 'windmill@1-1'\n"
    assert evaluate(expr + "flow_input.x + 1", scope(flow_input={"x": 1})) == 2
    assert evaluate(expr + "previous_result", scope(previous_result=[1])) == [1]


def test_names_in_scope() -> None:
    s = scope(
        {"a": 1},
        flow_input={"x": 1},
        previous_result={"p": 2},
        flow_env={"region": "eu"},
        extra={"resume": {"ok": True}, "approvers": ["ann"]},
    )
    assert evaluate("[flow_input.x, previous_result.p, flow_env.region, results.a]", s) == [1, 2, "eu", 1]
    assert evaluate("params", s) == {}
    assert evaluate("[resume.ok, approvers[0]]", s) == [True, "ann"]
    assert evaluate("typeof result", s) == "undefined"  # not in scope of input transforms
    assert (
        evaluate("[typeof require, typeof process, typeof fetch, typeof std, typeof os]", s)
        == ["undefined"] * 5
    )
    with pytest.raises(ExpressionError) as info:
        evaluate("result + 1", s)
    assert info.value.name == "ReferenceError"
    assert evaluate("result.length", scope(result=[1, 2])) == 2
    assert evaluate("result", scope(result=None)) is None  # None is a defined result


def test_extra_names_must_be_identifiers() -> None:
    with pytest.raises(ValueError):
        evaluate("1 + 1", scope(extra={"not a name": 1}))
    with pytest.raises(ValueError):
        evaluate("1 + 1", scope(extra={"flow_input": 1}))


def test_let_can_shadow_scope_names() -> None:
    assert evaluate("let flow_input = 3; return flow_input", scope(flow_input={"a": 1})) == 3


def test_values_are_copies() -> None:
    data = {"a": {"items": [1, 2]}}
    s = scope(data, flow_input={"l": [1]})
    assert evaluate("results.a.items.push(3); return results.a.items", s) == [1, 2, 3]
    assert evaluate("flow_input.l.push(2); return flow_input.l", s) == [1, 2]
    assert data == {"a": {"items": [1, 2]}}
    assert s.flow_input == {"l": [1]}
    fast = evaluate("flow_input", s)
    fast["l"].append(9)
    assert s.flow_input == {"l": [1]}


def test_fast_paths() -> None:
    res = Results({"a": {"v": 1}})
    s = scope(res, flow_input={"x": [1], "constructor": 5}, previous_result={"p": 1}, flow_env={"e": "v"})
    assert evaluate("flow_input.x", s) == [1]
    assert evaluate("flow_input.nope", s) is None
    assert evaluate("flow_input.constructor", s) == 5
    assert evaluate("flow_input.toString", s) is None  # a function in JS: null
    assert evaluate("flow_env.e", s) == "v"
    assert evaluate("flow_input", s) == {"x": [1], "constructor": 5}
    assert evaluate("previous_result", s) == {"p": 1}
    assert evaluate("results.a", s) == {"v": 1}
    assert evaluate("results.zz", s) is None
    assert res.calls == ["a", "zz"]
    with pytest.raises(ExpressionError) as info:
        evaluate("flow_input.x", EvalScope(flow_input=None, previous_result=None, results=res))
    assert info.value.name == "TypeError"


# ---------------------------------------------------------------------------------------------
# results: lazy, null for unknown ids


def test_results_fetches_only_referenced_ids() -> None:
    res = Results({"a": {"v": 1}, "b": {"v": 2}, "c": {"v": 3}})
    s = scope(res)
    assert evaluate("results.a.v + results['b'].v", s) == 3
    assert sorted(set(res.calls)) == ["a", "b"]
    res.calls.clear()
    # dynamic ids are fetched on demand (miss, fetch, run again)
    assert evaluate("const ids = ['a', 'c']; return ids.map(i => results[i].v)", s) == [1, 3]
    assert sorted(set(res.calls)) == ["a", "c"]
    res.calls.clear()
    assert evaluate("flow_input.x ?? 1", s) == 1
    assert res.calls == []


def test_each_id_is_fetched_once_per_evaluation() -> None:
    res = Results({"a": {"v": 1}})
    assert evaluate("const k = 'a'; return results[k].v + results[k].v + results.a.v", scope(res)) == 3
    assert res.calls == ["a"]


def test_missing_result_is_null_and_reading_through_it_throws() -> None:
    s = scope({"a": {"v": 1}})
    assert evaluate("results.missing", s) is None
    assert evaluate("results.missing === null", s) is True
    assert evaluate("results.missing ?? 'd'", s) == "d"
    assert evaluate("results.missing?.deep?.x ?? 'n'", s) == "n"
    with pytest.raises(ExpressionError) as info:
        evaluate("results.missing.b", s)
    assert info.value.name == "TypeError"
    assert "results.missing.b" in str(info.value)


def test_miss_inside_try_catch_still_sees_the_value() -> None:
    # The first pass throws inside the try; the final pass must see the real value.
    expr = "const k = ['a'][0]; try { return results[k].v } catch (e) { return 'caught' }"
    assert evaluate(expr, scope({"a": {"v": 7}})) == 7


def test_host_failure_of_a_lookup_propagates() -> None:
    def broken(step_id: str) -> Any:
        raise RuntimeError(f"xcom store down for {step_id}")

    with pytest.raises(RuntimeError, match="store down for a"):
        evaluate("results.a", scope(broken))
    with pytest.raises(RuntimeError):
        evaluate("const k = 'b'; try { return results[k] } catch (e) { return 0 }", scope(broken))
    # prefetched but not read: no failure
    assert evaluate("false ? results.a : 1", scope(broken)) == 1


# ---------------------------------------------------------------------------------------------
# Errors and limits


def test_throwing_expression() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("(() => { throw new TypeError('boom') })()", scope())
    err = info.value
    assert err.name == "TypeError"
    assert err.message == "boom"
    assert err.expr == "(() => { throw new TypeError('boom') })()"
    obj = err.error_object()
    assert obj["error"]["name"] == "TypeError"
    assert obj["error"]["message"].startswith("Error during isolated evaluation of expression `")
    assert obj["error"]["message"].endswith(": boom")


def test_thrown_non_errors_and_syntax_errors() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("let x = 1; throw 'plain string'", scope())
    assert (info.value.name, info.value.message) == ("Error", "plain string")
    with pytest.raises(ExpressionError) as info:
        evaluate("let x = 1; throw {message: 'obj', name: 'Custom'}", scope())
    assert (info.value.name, info.value.message) == ("Custom", "obj")
    with pytest.raises(ExpressionError) as info:
        evaluate("flow_input.(", scope())
    assert info.value.name == "SyntaxError"
    with pytest.raises(ExpressionError) as info:
        evaluate("undefined_name + 1", scope())
    assert info.value.name == "ReferenceError"


def test_rejected_await_and_never_settling_promise() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("await Promise.reject(new RangeError('nope'))", scope())
    assert (info.value.name, info.value.message) == ("RangeError", "nope")
    assert evaluate("await Promise.resolve(4)", scope()) == 4
    with pytest.raises(ExpressionError, match="never settles"):
        evaluate("await new Promise(() => {})", scope())


def test_infinite_loop_is_stopped_by_the_time_limit() -> None:
    # No wall-clock bound here (a loaded machine stretches it): the error says the limit stopped it.
    with pytest.raises(ExpressionError) as info:
        evaluate("while (true) {}", scope(), time_limit_s=0.5)
    assert info.value.name == "ExpressionTimeout"
    assert "0.5 s time limit" in str(info.value)
    assert "while (true) {}" in str(info.value)


def test_time_limit_covers_async_continuations() -> None:
    expr = "let n = 0; while (true) { await null; n++ }"
    with pytest.raises(ExpressionError) as info:
        evaluate(expr, scope(), time_limit_s=0.3)
    assert info.value.name == "ExpressionTimeout"


def test_unbounded_allocation_is_stopped_by_the_memory_limit() -> None:
    expr = "let a = []; while (true) { a.push('x'.repeat(1000) + a.length) }"
    with pytest.raises(ExpressionError) as info:
        evaluate(expr, scope(), memory_limit_bytes=16 * 1024 * 1024, time_limit_s=5)
    assert info.value.name == "ExpressionMemoryLimit"
    assert "16 MiB memory limit" in str(info.value)


def test_deep_recursion_is_a_range_error() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("function f(n) { return f(n + 1) + 1 }; return f(0)", scope())
    assert info.value.name == "RangeError"


def test_non_json_result_is_an_error() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("10n", scope())
    assert info.value.name == "TypeError"


# ---------------------------------------------------------------------------------------------
# Hostile expressions: user code shares the engine with the prelude that reports the outcome. It may
# change its own value (JSON.stringify's meaning, toJSON included, as in Windmill), but never the
# report: every outcome is a value or an ExpressionError, never an internal exception.

# (expression, value): prototypes patched, built-ins replaced; the value is what JSON.stringify
# (the one captured before user code ran) makes of it.
HIJACKED_VALUES = [
    ("(Object.prototype.toJSON = function () { return 'x' }, {a: 1})", "x"),
    ("(Object.prototype.toJSON = function () { return 'x' }, 5)", 5),  # primitives have no toJSON
    ("(Object.prototype.toJSON = function () { return undefined }, {a: 1})", None),
    ("(Object.prototype.toJSON = () => ({}), Object.freeze(Object.prototype), {a: 1})", {}),
    ("(Array.prototype.toJSON = function () { return 'arr' }, [1, 2])", "arr"),
    ("(String.prototype.toJSON = () => 's', {a: 'b', c: new String('d')})", {"a": "b", "c": "s"}),
    ("(Date.prototype.toJSON = function () { return 'd' }, {d: new Date(0)})", {"d": "d"}),
    ("({toJSON() { return 'own' }})", "own"),
    ("new Date(0)", "1970-01-01T00:00:00.000Z"),
    ("(JSON = null, {a: 1})", {"a": 1}),
    ("(JSON.stringify = function () { return '\"hijacked\"' }, JSON.parse = null, {a: 1})", {"a": 1}),
    ("(Object.keys = Array.isArray = Function.prototype.call = null, [1, {a: 'b'}])", [1, {"a": "b"}]),
    ("(Function.prototype.bind = Function.prototype.apply = null, [1, {a: 'b'}])", [1, {"a": "b"}]),
    ("(Reflect.apply = Object.hasOwn = Array.prototype.join = null, [1, 2])", [1, 2]),
    ("(Promise.prototype.then = function () {}, 1)", 1),
    ("(Promise.prototype.constructor = function () { throw new Error('species') }, 1)", 1),
    ("(Object.defineProperty(globalThis, '__wm_report', {value: 1}), (0, eval)('let report = 2'), 3)", 3),
    ("(Object.prototype.toJSON = () => 'x', results[flow_input.k])", "x"),  # a miss, a second pass
]


@pytest.mark.parametrize(("expr", "expected"), HIJACKED_VALUES)
def test_patched_builtins_change_only_the_value(expr: str, expected: Any) -> None:
    assert evaluate(expr, scope({"a": {"v": 1}}, flow_input={"k": "a"})) == expected


# (expression, error name, message part): each is the expression's own error.
HIJACKED_ERRORS = [
    ("(Object.prototype.toJSON = function () { throw new Error('boom') }, {a: 1})", "Error", "boom"),
    ("(Array.prototype.toJSON = function () { throw new TypeError('arr') }, [[1]])", "TypeError", "arr"),
    (
        "(Object.defineProperty(Object.prototype, 'toJSON', {get() { throw new Error('g') }}), {a: 1})",
        "Error",
        "g",
    ),
    ("({get a() { throw new Error('getter') }})", "Error", "getter"),
    ("new Proxy({}, {ownKeys() { throw new Error('keys') }})", "Error", "keys"),
    ("const a = {}; a.self = a; return a", "TypeError", "circular"),
    (
        "(Object.defineProperty(Array.prototype, '0', {set(v) { throw new Error('idx') }}),"
        " results[flow_input.k])",
        "Error",
        "idx",
    ),
    ("(() => { Error = String = null; throw new TypeError('t') })()", "TypeError", "t"),
    ("(() => { throw {get message() { throw 1 }} })()", "Error", "not printable"),
    (
        "(() => { throw {[Symbol.toPrimitive]() { throw 2 }, message: {toString() { throw 3 }}} })()",
        "Error",
        "not printable",
    ),
    ("let a = []; for (let i = 0; i < 1500; i++) a = [a]; return a", "RangeError", "nested too deeply"),
    ("let a = []; for (let i = 0; i < 100000; i++) a = [a]; return a", "RangeError", "call stack"),
]


@pytest.mark.parametrize(("expr", "name", "message"), HIJACKED_ERRORS)
def test_hostile_values_and_throws_are_expression_errors(expr: str, name: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate(expr, scope({"a": {"v": 1}}, flow_input={"k": "a"}))
    assert (info.value.name, message in info.value.message) == (name, True), info.value.message


def test_a_throwing_or_endless_to_json_is_bounded_by_the_limits() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("(Object.prototype.toJSON = () => { while (true) {} }, {a: 1})", scope(), time_limit_s=0.3)
    assert info.value.name == "ExpressionTimeout"
    with pytest.raises(ExpressionError) as info:
        evaluate(
            "(Object.prototype.toJSON = function () { return 'x'.repeat(1 << 20).repeat(100) }, {a: 1})",
            scope(),
            memory_limit_bytes=16 * 1024 * 1024,
        )
    assert info.value.name == "ExpressionMemoryLimit"


def test_long_values_and_errors_cross_intact() -> None:
    # QuickJS-ng keeps long concatenations as ropes, which the Python binding cannot convert.
    text = "x" * 3000 + "y" * 3000
    assert evaluate("'x'.repeat(3000) + 'y'.repeat(3000)", scope()) == text
    assert evaluate("({k: 'x'.repeat(3000) + 'y'.repeat(3000)})", scope()) == {"k": text}
    with pytest.raises(ExpressionError) as info:
        evaluate("throw new Error('x'.repeat(3000) + 'y'.repeat(3000))", scope())
    assert info.value.message == text


def test_engine_failures_of_any_type_are_expression_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import quickjs

    class Broken:
        def __init__(self) -> None:
            raise MemoryError("no context for you")

    monkeypatch.setattr(quickjs, "Context", Broken)
    with pytest.raises(ExpressionError) as info:
        evaluate("1 + 1", scope())
    assert info.value.name == "InternalError" and "MemoryError" in info.value.message


def test_python_inputs_that_are_not_json_are_expression_errors() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    for expr in ("flow_input", "flow_input.length"):
        with pytest.raises(ExpressionError) as info:
            evaluate(expr, scope(flow_input=deep))
        assert info.value.name == "TypeError"


# ---------------------------------------------------------------------------------------------
# variable() / resource()


def test_variable_and_resource_functions() -> None:
    asked: list[str] = []

    def variable(path: str) -> Any:
        asked.append(path)
        return {"u/admin/secret": "s3cr3t"}.get(path, f"v:{path}")

    def resource(path: str) -> Any:
        return {"host": "db", "path": path}

    s = scope(variable=variable, resource=resource)
    assert evaluate('variable("u/admin/secret")', s) == "s3cr3t"
    assert evaluate('await variable("u/admin/secret")', s) == "s3cr3t"
    assert evaluate("(await resource('f/db')).host", s) == "db"
    assert evaluate("const p = ['f', 'x'].join('/'); return variable(p)", s) == "v:f/x"
    assert asked == ["u/admin/secret", "u/admin/secret", "f/x"]


def test_variable_not_available_or_not_found() -> None:
    with pytest.raises(ExpressionError, match=r"variable\(\) is not available here"):
        evaluate('variable("x")', scope())
    assert evaluate("try { return resource('x') } catch (e) { return e.message }", scope()) == (
        "resource() is not available here"
    )

    def missing(path: str) -> Any:
        raise StepError("VariableNotFound", f"no variable {path}")

    s = scope(variable=missing)
    with pytest.raises(ExpressionError) as info:
        evaluate('variable("f/x")', s)
    assert (info.value.name, info.value.message) == ("VariableNotFound", "no variable f/x")
    assert evaluate("try { return variable('f/x') } catch (e) { return 'fallback' }", s) == "fallback"


# ---------------------------------------------------------------------------------------------
# Predicates


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("true", True),
        ("false", False),
        ("0", False),
        ("1", True),
        ("''", False),
        ("'0'", True),
        ("[]", True),  # JS truthiness, not Python's
        ("({})", True),
        ("null", False),
        ("undefined", False),
        ("NaN", False),
        ("result < 0", True),
        ("result.length === 0", False),
        ("flow_input.empty_list", True),
        ("flow_input.zero", False),
        ("results.nope", False),
        ("let v = result; return v > -5", True),
    ],
)
def test_predicate_truthiness(expr: str, expected: bool) -> None:
    s = scope(flow_input={"empty_list": [], "zero": 0}, result=-1)
    assert evaluate_predicate(expr, s) is expected


def test_predicate_errors_raise() -> None:
    with pytest.raises(ExpressionError):
        evaluate_predicate("result.x.y", scope(result=None))


# ---------------------------------------------------------------------------------------------
# Static values and whole transform maps


def test_resolve_static() -> None:
    s = scope(variable=lambda p: f"var:{p}", resource=lambda p: {"res": p})
    assert resolve_static("$var:f/team/key", s) == "var:f/team/key"
    assert resolve_static("$res:f/team/db", s) == {"res": "f/team/db"}
    assert resolve_static("plain $var:x", s) == "plain $var:x"
    assert resolve_static({"k": "$var:x"}, s) == {"k": "$var:x"}  # only top-level strings
    assert resolve_static(["$var:x"], s) == ["$var:x"]
    original = {"nested": [1, 2]}
    copied = resolve_static(original, s)
    assert copied == original and copied is not original and copied["nested"] is not original["nested"]
    assert resolve_static(None, s) is None and resolve_static(3.5, s) == 3.5
    with pytest.raises(ExpressionError, match="not available"):
        resolve_static("$var:x", scope())


def test_evaluate_transforms_in_order() -> None:
    transforms = {
        "x": InputTransform(kind="static", value=10),
        "y": InputTransform(kind="javascript", expr="results.a.v * 2"),
        "z": InputTransform(kind="static", value="$var:f/k"),
        "w": InputTransform(kind="javascript", expr="flow_input.missing"),
    }
    args = evaluate_transforms(transforms, scope({"a": {"v": 4}}, variable=lambda p: "secret"))
    assert args == {"x": 10, "y": 8, "z": "secret", "w": None}
    assert list(args) == ["x", "y", "z", "w"]


def test_evaluate_transforms_rejects_ai_and_propagates_errors() -> None:
    with pytest.raises(ExpressionError, match="ai transforms are not supported"):
        evaluate_transforms({"q": InputTransform(kind="ai")}, scope())
    with pytest.raises(ExpressionError) as info:
        evaluate_transforms({"q": InputTransform(kind="javascript", expr="results.a.b")}, scope())
    assert info.value.name == "TypeError"


def test_engine_is_not_imported_with_the_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys, airflow_openflow.runtime.expressions, airflow_openflow.runtime.scripts;"
        "assert 'quickjs' not in sys.modules and '_quickjs' not in sys.modules;"
        "assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
