"""Sequential-loop cost, as ratios against linear flows of as many steps, in the same run.

A sequential for-loop of N iterations whose body has B trivial python3 steps, against a linear
flow of N x B such steps, each through ``run_flow(mode="executor")`` (task processes, the
scheduler loop of ``dag.test``, a triggerer: how a loop on tasks runs; a linear flow alone would
run in process). Every variant runs once to warm up, then ROUNDS times in turn; the medians and
their ratios are printed (issue 12, item 3: at most x1.5).
Run: make bench  (or: python bench/loop_time.py [ROUNDS] [N])
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="openflow-bench-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.flows, when run as bench/loop_time.py

from tests.flows import py  # noqa: E402


def linear(steps: int) -> dict[str, Any]:
    modules = [py("s0", "return x + 1", x="flow_input.x")]
    modules += [py(f"s{i}", "return v + 1", v=f"results.s{i - 1}") for i in range(1, steps)]
    return {"summary": f"bench linear {steps}", "value": {"modules": modules}}


def sequential_loop(iterations: int, body: int) -> dict[str, Any]:
    modules = [py("b0", "return i * 2", i="flow_input.iter.value")]
    modules += [py(f"b{k}", "return v + 1", v=f"results.b{k - 1}") for k in range(1, body)]
    loop = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "javascript", "expr": f"Array.from({{length: {iterations}}}, (_, i) => i)"},
            "skip_failures": False,
            "parallel": False,
            "modules": modules,
        },
    }
    return {"summary": f"bench sequential loop {iterations}x{body}", "value": {"modules": [loop]}}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    import airflow_openflow

    def run(document: dict[str, Any], expected: Any) -> Callable[[], None]:
        def call() -> None:
            outcome = airflow_openflow.run_flow(document, {"x": 0}, mode="executor")
            assert (outcome.status, outcome.result) == ("success", expected), outcome

        return call

    pairs = {
        1: (run(linear(n), n), run(sequential_loop(n, 1), [i * 2 for i in range(n)])),
        2: (run(linear(2 * n), 2 * n), run(sequential_loop(n, 2), [i * 2 + 1 for i in range(n)])),
    }
    variants: dict[str, Callable[[], None]] = {}
    for body, (line, loop) in pairs.items():
        variants[f"{n * body} linear steps"] = line
        variants[f"loop {n} x {body}-step body"] = loop
    for call in variants.values():  # warm-up (runner, API server, triggerer)
        call()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, call in variants.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"sequential loop against linear steps, run_flow executor mode, median of {rounds} rounds")
    names = list(variants)
    for base_name, loop_name in zip(names[::2], names[1::2], strict=True):
        base = medians[base_name]
        for name in (base_name, loop_name):
            spread = ", ".join(f"{v:.1f}" for v in times[name])
            print(f"  {name:26} {medians[name]:6.1f} s  x{medians[name] / base:5.2f}   ({spread})")
    airflow_openflow.runner.close_runner()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
