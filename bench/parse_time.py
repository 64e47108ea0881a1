"""DAG-parse cost of OpenFlow documents, as ratios against plain-Python DAGs built in the same run.

For N flows of S steps each (git-sync folders with !inline scripts):
  - baseline: the same N DAGs of S+1 chained EmptyOperators written directly in Python;
  - load_openflow_dags over the folder (discover, parse YAML, resolve !inline, validate, compile),
    cold (parse cache off), filling the cache, and warm (every flow's load result from the cache);
  - the worker path: the same call with the parsing context set to one dag_id (builds one DAG).
Then one long flow, compiled (build_dag of the parsed document): L linear steps (10 000 by default)
and L/10 steps that are each a branchone, against a plain chain of as many EmptyOperators; each
also at half the size, so that the "x2 steps" ratio shows how the time grows (linear: about 2).
Prints seconds and the ratios. Run: make bench  (or: python bench/parse_time.py [N] [S] [L]; L=0 skips)
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="openflow-bench-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def write_flows(root: Path, flows: int, steps: int) -> None:
    for f in range(flows):
        folder = root / "f" / "bench" / f"flow_{f:04d}.flow"
        folder.mkdir(parents=True)
        modules = []
        for s in range(steps):
            (folder / f"step_{s}.inline_script.py").write_text(f"def main(x):\n    return (x or 0) + {s}\n")
            modules.append(
                f"    - id: s{s}\n      summary: step {s}\n      value:\n        type: rawscript\n"
                f"        language: python3\n        content: '!inline step_{s}.inline_script.py'\n"
                f"        input_transforms:\n          x:\n            type: javascript\n"
                f"            expr: previous_result\n"
            )
        (folder / "flow.yaml").write_text(
            "summary: bench flow\nschema:\n  type: object\n"
            "  properties:\n    x: {type: integer, default: 1}\n"
            "value:\n  modules:\n" + "".join(modules)
        )


def baseline(flows: int, steps: int) -> float:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, chain

    start = time.perf_counter()
    for f in range(flows):
        with DAG(dag_id=f"baseline_{f}", schedule=None, params={"x": 1}):
            chain(*[EmptyOperator(task_id=f"s{s}") for s in range(steps + 1)])
    return time.perf_counter() - start


def hand_written(flows: int, steps: int) -> float:
    """The same flows written by hand: a PythonOperator per step, as a DAG author writes a python
    step (what ``airflow-openflow`` compiles a step to is an operator subclass too)."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, Param, chain

    def step(x: int | None = None) -> int:
        return (x or 0) + 1

    start = time.perf_counter()
    for f in range(flows):
        # The flows' schema as a trigger form: x, an integer defaulting to 1.
        with DAG(dag_id=f"hand_written_{f}", schedule=None, params={"x": Param(1, type="integer")}):
            chain(*[PythonOperator(task_id=f"s{s}", python_callable=step) for s in range(steps + 1)])
    return time.perf_counter() - start


def chain_of(tasks: int) -> float:
    """A plain Python DAG of ``tasks`` chained EmptyOperators: the peer of one long flow."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, chain

    start = time.perf_counter()
    with DAG(dag_id=f"chain_{tasks}", schedule=None):
        chain(*[EmptyOperator(task_id=f"t{t}") for t in range(tasks)])
    return time.perf_counter() - start


def long_flow(kind: str, steps: int) -> dict[str, Any]:
    def identity(step_id: str) -> dict[str, Any]:
        return {"id": step_id, "value": {"type": "identity"}}

    if kind == "linear":
        modules = [identity(f"s{s}") for s in range(steps)]
    else:  # each step a branchone: a chooser, one branch, the default, a collector (4 tasks)
        modules = [
            {
                "id": f"b{s}",
                "value": {
                    "type": "branchone",
                    "branches": [{"expr": "true", "modules": [identity(f"x{s}")]}],
                    "default": [identity(f"d{s}")],
                },
            }
            for s in range(steps)
        ]
    return {"summary": f"{steps} {kind} steps", "value": {"modules": modules}}


def compile_time(kind: str, steps: int) -> tuple[float, int]:
    """Seconds to build the DAG of a parsed long flow, and its number of tasks."""
    from airflow_openflow.compile import build_dag
    from airflow_openflow.spec import load_flow

    flow = load_flow(long_flow(kind, steps)).flow
    assert flow is not None
    start = time.perf_counter()
    dag = build_dag(flow, dag_id=f"long_{kind}_{steps}")
    return time.perf_counter() - start, len(dag.task_dict)


def long_flows(steps: int) -> None:
    print("one long flow (compile only), against a plain chain of as many tasks")
    for kind, size in (("linear", steps), ("branchone", max(steps // 10, 1))):
        half, _ = compile_time(kind, size // 2 or 1)
        ours, tasks = compile_time(kind, size)
        base = chain_of(tasks)
        base_half = chain_of(tasks // 2 or 1)
        print(
            f"  {size} {kind} steps ({tasks} tasks): {ours:.2f} s, x2 steps -> x{ours / half:.1f} time;"
            f" plain chain: {base:.2f} s, x2 -> x{base / base_half:.1f}; ratio {ours / base:.2f}x"
        )


HAND_WRITTEN_FILE = """\
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param, chain


def step(x=None):
    return (x or 0) + 1


for f in range({flows}):
    with DAG(dag_id=f"hand_written_{{f}}", schedule=None, params={{"x": Param(1, type="integer")}}) as dag:
        chain(*[PythonOperator(task_id=f"s{{s}}", python_callable=step) for s in range({steps} + 1)])
    globals()[f"dag_{{f}}"] = dag
"""

OPENFLOW_FILE = """\
from airflow_openflow import load_openflow_dags

load_openflow_dags({root!r}, namespace=globals())
"""


def dagbag_time(dag_file: Path, expected: int, repeat: int = 3) -> float:
    """Seconds Airflow's own DagBag takes to parse ``dag_file`` (the best of ``repeat``)."""
    from airflow.dag_processing.dagbag import DagBag

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        bag = DagBag(dag_folder=str(dag_file), safe_mode=False)
        times.append(time.perf_counter() - start)
        assert len(bag.dags) == expected and not bag.import_errors, (len(bag.dags), bag.import_errors)
    return min(times)


def dagbag_ratios(tmp: Path, root: Path, flows: int, steps: int) -> list[str]:
    """The DAG processor's view: the DAG file users copy against a hand-written DAG file."""
    hand = tmp / "hand_written_dags.py"
    hand.write_text(HAND_WRITTEN_FILE.format(flows=flows, steps=steps))
    ours = tmp / "openflow_dags.py"
    ours.write_text(OPENFLOW_FILE.format(root=str(root)))
    base = dagbag_time(hand, flows)
    os.environ["AIRFLOW__OPENFLOW__PARSE_CACHE"] = "False"
    cold = dagbag_time(ours, flows)
    os.environ["AIRFLOW__OPENFLOW__PARSE_CACHE"] = "True"
    dagbag_time(ours, flows, repeat=1)  # fills the cache
    warm = dagbag_time(ours, flows)
    return [
        "  Airflow's DagBag parsing the DAG file:",
        f"    hand-written DAG file (PythonOperators): {base:.3f} s",
        f"    dags/openflow_dags.py, cold:              {cold:.3f} s  ratio {cold / base:.2f}x",
        f"    dags/openflow_dags.py, warm:              {warm:.3f} s  ratio {warm / base:.2f}x",
    ]


def main() -> None:
    flows = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    from airflow_openflow import load_openflow_dags

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "flows"
        write_flows(root, flows, steps)
        os.environ["AIRFLOW__OPENFLOW__PARSE_CACHE_DIR"] = str(Path(tmp) / "parse-cache")
        baseline(2, steps)  # warm imports of both paths before timing
        load_openflow_dags(next(root.rglob("flow.yaml")).parent)

        def timed(*, cache: bool, repeat: int = 3) -> float:
            os.environ["AIRFLOW__OPENFLOW__PARSE_CACHE"] = str(cache)
            times = []
            for _ in range(repeat):
                gc.collect()  # each parse starts from a clean heap, as in a new DAG processor child
                start = time.perf_counter()
                count = len(load_openflow_dags(root))
                times.append(time.perf_counter() - start)
                assert count in (1, flows), f"expected {flows} DAGs, got {count}"
            return min(times)

        def collected(build: Any) -> float:
            gc.collect()
            return float(build(flows, steps))

        hand_written(2, steps)
        base = min(collected(hand_written) for _ in range(3))
        floor = min(collected(baseline) for _ in range(3))
        cold = timed(cache=False)  # every flow loaded: the first parse, or the cache turned off
        filling = timed(cache=True, repeat=1)  # loaded and written to the cache
        warm = timed(cache=True)  # every flow from the cache: an unchanged folder re-parsed

        os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = (
            "f__bench__flow_0042" if flows > 42 else "f__bench__flow_0000"
        )
        worker = timed(cache=True)
        del os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"]
        dagbag = dagbag_ratios(Path(tmp), root, flows, steps)

    print(f"{flows} flows x {steps} steps")
    print(
        f"  hand-written (Python DAGs, a PythonOperator a step): {base:.3f} s  (the baseline of the ratios)"
    )
    print(f"  floor (Python DAGs, an EmptyOperator a step):       {floor:.3f} s  ratio {floor / base:.2f}x")
    print(f"  load_openflow_dags, cold (no cache):               {cold:.3f} s  ratio {cold / base:.2f}x")
    print(
        f"  load_openflow_dags, first parse filling the cache: {filling:.3f} s  ratio {filling / base:.2f}x"
    )
    print(f"  load_openflow_dags, warm (unchanged, cached):      {warm:.3f} s  ratio {warm / base:.2f}x")
    print(f"  worker path (one dag_id, cached):                  {worker:.3f} s  ratio {worker / base:.2f}x")
    print(
        f"  per flow: cold {cold / flows * 1000:.2f} ms, warm {warm / flows * 1000:.2f} ms "
        f"(hand-written {base / flows * 1000:.2f} ms)"
    )
    print("\n".join(dagbag))
    long_steps = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    if long_steps > 0:
        long_flows(long_steps)


if __name__ == "__main__":
    main()
