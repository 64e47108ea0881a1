"""Cost of OpenFlow expressions (runtime/expressions.py), in microseconds, next to the engine's own
floor measured in the same run: a fresh quickjs-ng context evaluating ``1``.

- a plain property path (``flow_input.customer``): the fast path, no JavaScript engine;
- a typical transform (``results.order.items.map(...).reduce(...)``: one step result fetched, one pass);
- a predicate (``results.order.total > 10 && flow_input.vip``);
- an expression the scan of runtime/expression_reuse.py refuses (a ``try``): it runs in a fresh
  context, as every expression did before contexts were reused.

The first three are what the bound is about; the last shows what an expression that cannot use the
reused context still costs.

Each is evaluated ROUNDS times after a warm-up; the medians are printed, and the issue's bound
(100 us median) is shown next to them. Run: make bench  (or: python bench/expression_time.py [ROUNDS])
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

ORDER = {
    "items": [{"name": f"item {i}", "price": 1.5 + i, "qty": 1 + i % 3} for i in range(10)],
    "total": 42.0,
}


def median_us(action: Callable[[], Any], rounds: int) -> float:
    for _ in range(min(rounds, 50)):
        action()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main() -> None:
    import quickjs

    from airflow_openflow.runtime.expressions import EvalScope, evaluate, evaluate_predicate

    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    scope = EvalScope(
        flow_input={"customer": "Ada", "vip": True},
        previous_result=None,
        results=lambda step: ORDER if step == "order" else None,
    )
    path = "flow_input.customer"
    transform = "results.order.items.map(i => i.price * i.qty).reduce((sum, x) => sum + x, 0)"
    predicate = "results.order.total > 10 && flow_input.vip"
    assert evaluate(path, scope) == "Ada"
    assert evaluate(transform, scope) == sum(i["price"] * i["qty"] for i in ORDER["items"])
    assert evaluate_predicate(predicate, scope) is True
    refused = "try { return results.order.total } catch (e) { return 0 }"
    assert evaluate(refused, scope) == ORDER["total"]

    floor = median_us(lambda: quickjs.Context().eval("1"), rounds)
    figures = {
        "property path (fast path)": median_us(lambda: evaluate(path, scope), rounds),
        "typical transform": median_us(lambda: evaluate(transform, scope), rounds),
        "predicate": median_us(lambda: evaluate_predicate(predicate, scope), rounds),
        "refused by the scan (fresh context)": median_us(lambda: evaluate(refused, scope), rounds),
    }
    print(f"expressions, median of {rounds} evaluations (bound: 100 us)")
    print(f"  fresh quickjs-ng context evaluating 1 (floor): {floor:8.1f} us")
    for name, us in figures.items():
        print(f"  {name + ':':46} {us:8.1f} us  ratio {us / floor:.2f}x")


if __name__ == "__main__":
    main()
