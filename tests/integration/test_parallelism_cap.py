"""A parallel loop's ``parallelism`` caps the iterations running at once in every ``run_flow`` mode,
as it does under the scheduler (docs/run-flow.md, Modes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import airflow_openflow
from airflow_openflow.run_modes import RunModeError, planned_mode
from tests.flows import flow, py

# Each iteration notes when it starts and ends (wall clock of this machine) in the shared folder.
TIMED = (
    "import pathlib, time\n"
    "start = time.time()\n"
    "time.sleep(2)\n"
    "pathlib.Path(d, f'{v}').write_text(f'{start} {time.time()}')\n"
    "return v"
)
ITEMS = list(range(6))


def _loop(body: list[dict[str, Any]], parallelism: Any) -> dict[str, Any]:
    return {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "parallel": True,
            "parallelism": parallelism,
            "iterator": {"type": "javascript", "expr": "flow_input.items"},
            "modules": body,
        },
    }


def _most_at_once(folder: Path) -> int:
    """The largest number of iterations whose [start, end] intervals overlap at one moment."""
    spans = [tuple(map(float, folder.joinpath(str(i)).read_text().split())) for i in ITEMS]
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, change in events:  # an end sorts before a start at the same instant
        running += change
        most = max(most, running)
    return most


@pytest.mark.parametrize(
    "parallelism",
    [{"type": "static", "value": 2}, {"type": "javascript", "expr": "flow_input.width"}],
    ids=["static", "expression"],
)
def test_parallelism_caps_the_iterations_running_at_once_in_executor_mode(
    tmp_path: Path, parallelism: dict[str, Any]
) -> None:
    body = py("work", TIMED, d="flow_input.d", v="flow_input.iter.value")
    outcome = airflow_openflow.run_flow(
        flow(_loop([body], parallelism)),
        {"items": ITEMS, "d": str(tmp_path), "width": 2},
        mode="executor",  # task processes through a LocalExecutor with 4 slots
    )
    assert (outcome.mode, outcome.status, outcome.result) == ("executor", "success", ITEMS)
    # Two at once (the cap, not one at a time), never three.
    assert _most_at_once(tmp_path) == 2


def test_a_static_parallelism_caps_iterations_not_steps_for_a_body_of_two_steps(tmp_path: Path) -> None:
    """Iteration 2 starts only once iteration 0 has run both its steps (a per-step cap would let
    it start while iteration 0 runs its second step: three iterations under way)."""
    first = py("first", "import time\nstart = time.time()\ntime.sleep(1)\nreturn start")
    second = py(
        "second",
        "import pathlib, time\ntime.sleep(1)\n"
        "pathlib.Path(d, f'{v}').write_text(f'{s} {time.time()}')\nreturn v",
        d="flow_input.d",
        v="flow_input.iter.value",
        s="results.first",
    )
    outcome = airflow_openflow.run_flow(
        flow(_loop([first, second], {"type": "static", "value": 2})),
        {"items": ITEMS, "d": str(tmp_path)},
        mode="executor",
    )
    assert (outcome.status, outcome.result) == ("success", ITEMS)
    assert _most_at_once(tmp_path) == 2


def test_a_parallel_loop_always_runs_through_the_executor() -> None:
    """So the tests above cover every mode such a flow runs in: ``auto`` picks the executor, and
    ``in_process`` (one task at a time) refuses it."""
    document = flow(_loop([py("work", "return 1")], {"type": "static", "value": 2}))
    assert planned_mode(document) == "executor"
    with pytest.raises(RunModeError, match="parallel"):
        planned_mode(document, "in_process")
