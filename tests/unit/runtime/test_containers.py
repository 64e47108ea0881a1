"""runtime/container_runner.py: loops and branches run inside one task, without Airflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_step_semantics import FakeRun

from airflow_openflow.runtime.outcomes import OutcomeKind
from airflow_openflow.runtime.step import run_step
from airflow_openflow.spec import load_flow
from airflow_openflow.spec.model import FlowModule
from tests.flows import py


def loop(items: Any, *body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    iterator = (
        {"type": "static", "value": items}
        if not isinstance(items, str)
        else {"type": "javascript", "expr": items}
    )
    extra = {k: v for k, v in fields.items() if k in ("stop_after_if", "stop_after_all_iters_if", "retry")}
    value = {k: v for k, v in fields.items() if k not in extra}
    return {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": iterator,
            "skip_failures": False,
            "modules": list(body),
            **value,
        },
        **extra,
    }


def module(raw: dict[str, Any]) -> FlowModule:
    return load_flow({"summary": "t", "value": {"modules": [raw]}}).flow.value.modules[0]


def run(raw: dict[str, Any], **ctx: Any) -> Any:
    outcome = run_step(module(raw), FakeRun(**ctx))
    return outcome.kind, outcome.result


def test_loop_result_is_the_array_of_last_results_in_order() -> None:
    assert run(
        loop(
            [1, 2, 3],
            py("a", "return n * 2", n="flow_input.iter.value"),
            py("b", "return [p, i]", p="previous_result", i="flow_input.iter.index"),
        )
    ) == (OutcomeKind.SUCCESS, [[2, 0], [4, 1], [6, 2]])


def test_body_reads_outer_results_and_its_own_earlier_steps() -> None:
    body = [
        py("a", "return x", x="results.outer + flow_input.iter.value"),
        py("b", "return y + 1", y="results.a"),
    ]
    assert run(loop([10, 20], *body), results={"outer": 1}) == (OutcomeKind.SUCCESS, [12, 22])


def test_first_body_step_sees_the_iteration_input_as_previous_result() -> None:
    _, result = run(loop([5], py("a", "return p", p="previous_result")), flow_input={"k": 1})
    assert result == [{"k": 1, "iter": {"index": 0, "value": 5}}]


def test_sequential_loop_stops_at_the_first_failure_with_the_array_so_far() -> None:
    body = py("a", "if n == 1:\n    raise ValueError(f'bad {n}')\nreturn n", n="flow_input.iter.value")
    kind, result = run(loop([0, 1, 2], body))
    assert kind is OutcomeKind.FAILED and result[0] == 0 and len(result) == 2
    assert result[1]["error"]["name"] == "ValueError"


def test_parallel_loop_runs_every_iteration_before_failing() -> None:
    body = py("a", "if n % 2:\n    raise ValueError('odd')\nreturn n", n="flow_input.iter.value")
    kind, result = run(loop([0, 1, 2, 3], body, parallel=True))
    assert kind is OutcomeKind.FAILED and len(result) == 4
    assert [r if not isinstance(r, dict) else "E" for r in result] == [0, "E", 2, "E"]


def test_skip_failures_keeps_the_error_object_and_succeeds() -> None:
    body = py("a", "if n == 1:\n    raise ValueError('one')\nreturn n", n="flow_input.iter.value")
    kind, result = run(loop([0, 1, 2], body, skip_failures=True))
    assert kind is OutcomeKind.SUCCESS and result[0] == 0 and result[2] == 2 and "error" in result[1]


def test_stop_inside_a_sequential_loop_breaks_it_and_the_flow_goes_on() -> None:
    body = {**py("a", "return n", n="flow_input.iter.value"), "stop_after_if": {"expr": "result >= 2"}}
    assert run(loop([1, 2, 3, 4], body)) == (OutcomeKind.SUCCESS, [1, 2])


def test_stop_inside_a_parallel_loop_only_ends_that_iteration() -> None:
    body = [
        {**py("a", "return n", n="flow_input.iter.value"), "stop_after_if": {"expr": "result == 2"}},
        py("b", "return p * 10", p="previous_result"),
    ]
    assert run(loop([1, 2, 3], *body, parallel=True)) == (OutcomeKind.SUCCESS, [10, 2, 30])


def test_stop_after_if_on_the_loop_module_is_its_break_condition() -> None:
    raw = loop(
        [1, 2, 3, 4], py("a", "return n", n="flow_input.iter.value"), stop_after_if={"expr": "result == 2"}
    )
    assert run(raw) == (OutcomeKind.SUCCESS, [1, 2])


@pytest.mark.parametrize(
    ("stop", "kind", "result"),
    [
        ({"expr": "result.length == 2"}, OutcomeKind.STOPPED, [1, 2]),
        (
            {"expr": "result.length == 2", "error_message": "x", "error_include_result": True},
            OutcomeKind.ERROR_STOP,
            {"error": {"name": "EarlyStopError", "message": "x", "result": [1, 2]}},
        ),
        ({"expr": "false"}, OutcomeKind.SUCCESS, [1, 2]),
    ],
)
def test_stop_after_all_iters_if(stop: dict[str, Any], kind: OutcomeKind, result: Any) -> None:
    raw = loop([1, 2], py("a", "return n", n="flow_input.iter.value"), stop_after_all_iters_if=stop)
    assert run(raw) == (kind, result)


@pytest.mark.parametrize(
    ("items", "found"),
    [({"k": 1}, "invalid type: map"), ("s", 'invalid type: string "s"'), (3, "invalid type: integer `3`")],
)
def test_iterator_not_an_array_fails_the_flow_without_retry(items: Any, found: str) -> None:
    outcome = run_step(module(loop("flow_input.v", py("a", "return 1"))), FakeRun(flow_input={"v": items}))
    assert outcome.kind is OutcomeKind.FAILED and not outcome.retryable
    assert outcome.result["error"]["message"].startswith(
        f"Expected an array value in the iterator expression, found: {found}"
    )


def test_empty_iterator_gives_an_empty_array() -> None:
    assert run(loop([], py("a", "return 1"))) == (OutcomeKind.SUCCESS, [])


def test_nested_loops_see_iter_and_iter_parent() -> None:
    inner = {
        "id": "inner",
        "value": {
            "type": "forloopflow",
            "skip_failures": False,
            "iterator": {"type": "javascript", "expr": "[1, 2]"},
            "modules": [
                py("c", "return [o, i]", o="flow_input.iter_parent.value", i="flow_input.iter.value")
            ],
        },
    }
    assert run(loop(["a", "b"], inner)) == (OutcomeKind.SUCCESS, [[["a", 1], ["a", 2]], [["b", 1], ["b", 2]]])


def test_while_loop_iterates_until_its_stop_after_if() -> None:
    raw = {
        "id": "w",
        "value": {
            "type": "whileloopflow",
            "skip_failures": False,
            "modules": [py("a", "return [i, v]", i="flow_input.iter.index", v="flow_input.iter.value")],
        },
        "stop_after_if": {"expr": "result[0] == 2"},
    }
    assert run(raw) == (OutcomeKind.SUCCESS, [[0, 0], [1, 1], [2, 2]])


def test_while_loop_ends_on_a_body_stop_or_fails_on_a_failure() -> None:
    stop = {**py("a", "return i", i="flow_input.iter.index"), "stop_after_if": {"expr": "result == 1"}}
    raw = {"id": "w", "value": {"type": "whileloopflow", "skip_failures": False, "modules": [stop]}}
    assert run(raw) == (OutcomeKind.SUCCESS, [0, 1])
    fail = py("a", "if i == 2:\n    raise ValueError('two')\nreturn i", i="flow_input.iter.index")
    raw = {"id": "w", "value": {"type": "whileloopflow", "skip_failures": False, "modules": [fail]}}
    kind, result = run(raw)
    assert kind is OutcomeKind.FAILED and result[:2] == [0, 1] and result[2]["error"]["name"] == "ValueError"


def branchone(*branches: tuple[str, list[dict[str, Any]]], default: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "b1",
        "value": {
            "type": "branchone",
            "default": default,
            "branches": [{"expr": e, "modules": m} for e, m in branches],
        },
    }


def test_branchone_runs_the_first_true_branch_else_default() -> None:
    raw = branchone(
        ("false", [py("x", "return 'x'")]),
        ("previous_result.n > 1", [py("y", "return 'y'")]),
        default=[py("d", "return 'd'")],
    )
    assert run(raw, previous={"n": 2}) == (OutcomeKind.SUCCESS, "y")
    assert run(raw, previous={"n": 0}) == (OutcomeKind.SUCCESS, "d")


def test_an_empty_chosen_branch_passes_the_previous_result() -> None:
    assert run(branchone(default=[]), previous=7) == (OutcomeKind.SUCCESS, 7)


def test_a_stop_in_a_chosen_branch_stops_the_flow() -> None:
    stop = {**py("s", "return 5"), "stop_after_if": {"expr": "true"}}
    assert run(branchone(default=[stop])) == (OutcomeKind.STOPPED, 5)


def branchall(*branches: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    skip = fields.pop("skip", ())
    return {
        "id": "ba",
        "value": {
            "type": "branchall",
            **fields,
            "branches": [{"modules": m, "skip_failure": i in skip} for i, m in enumerate(branches)],
        },
    }


def test_branchall_results_are_in_branch_order_and_copies() -> None:
    raw = branchall(
        [py("x", "a.append(2)\nreturn a", a="results.a")], [py("y", "a.append(3)\nreturn a", a="results.a")]
    )
    assert run(raw, results={"a": [1]}) == (OutcomeKind.SUCCESS, [[1, 2], [1, 3]])


def test_a_stop_in_a_sequential_branchall_stops_the_flow_with_the_array_so_far() -> None:
    stop = {**py("s", "return -1"), "stop_after_if": {"expr": "result < 0"}}
    raw = branchall([stop], [py("never", "raise RuntimeError('must not run')")], parallel=False)
    assert run(raw) == (OutcomeKind.STOPPED, [-1])


def test_branchall_failure_rules() -> None:
    boom = py("boom", "raise ValueError('boom')")
    kind, result = run(branchall([boom], [py("ok", "return 1")]))
    assert kind is OutcomeKind.FAILED and result[1] == 1 and result[0]["error"]["name"] == "ValueError"
    kind, result = run(branchall([boom], [py("ok", "return 1")], parallel=False))
    assert kind is OutcomeKind.FAILED and len(result) == 1  # sequential: later branches do not run
    kind, result = run(branchall([boom], [py("ok", "return 1")], skip=(0,)))
    assert kind is OutcomeKind.SUCCESS and result[1] == 1


def test_a_nested_step_is_retried_in_the_task_with_the_same_budget(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    flaky = {
        **py(
            "f",
            f"import pathlib\np = pathlib.Path({str(counter)!r})\n"
            "n = int(p.read_text()) + 1 if p.exists() else 1\n"
            "p.write_text(str(n))\nif n < 3:\n    raise RuntimeError(n)\nreturn n",
        ),
        "retry": {"constant": {"attempts": 2, "seconds": 0}},
    }
    assert run(loop([0], flaky)) == (OutcomeKind.SUCCESS, [3])


RENDEZVOUS = (
    "import pathlib, time\n"
    "pathlib.Path(d, f'here_{me}').write_text('x')\n"
    "deadline = time.time() + 20\n"
    "while not pathlib.Path(d, f'here_{other}').exists():\n"
    "    if time.time() > deadline:\n"
    "        raise TimeoutError(f'{me} never saw {other}')\n"
    "    time.sleep(0.02)\n"
    "return me"
)


def test_parallel_branches_really_overlap(tmp_path: Path) -> None:
    def branch(me: str, other: str) -> list[dict[str, Any]]:
        return [py(me, RENDEZVOUS, d="flow_input.d", me=f"'{me}'", other=f"'{other}'")]

    raw = branchall(branch("x", "y"), branch("y", "x"))
    assert run(raw, flow_input={"d": str(tmp_path)}) == (OutcomeKind.SUCCESS, ["x", "y"])


def test_parallel_iterations_really_overlap_and_parallelism_caps_them(tmp_path: Path) -> None:
    body = py(
        "w", RENDEZVOUS, d="flow_input.d", me="flow_input.iter.value", other="1 - flow_input.iter.value"
    )
    assert run(loop([0, 1], body, parallel=True), flow_input={"d": str(tmp_path)}) == (
        OutcomeKind.SUCCESS,
        [0, 1],
    )

    track = py("t", "import threading, time\nn = threading.active_count()\ntime.sleep(0.05)\nreturn n")
    parallelism = {"type": "static", "value": 1}
    kind, result = run(loop([0, 1, 2], track, parallel=True, parallelism=parallelism))
    assert kind is OutcomeKind.SUCCESS and len(set(result)) == 1  # one worker thread at a time


class Store:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def test_a_sequential_loop_resumes_after_checkpointed_iterations_and_clears_them(tmp_path: Path) -> None:
    class Stored(FakeRun):
        task_state_store = Store()

    done = tmp_path / "ran"
    body = py(
        "a",
        f"import pathlib\np = pathlib.Path({str(done)!r})\n"
        "p.write_text((p.read_text() if p.exists() else '') + str(v))\nreturn v * 10",
        v="flow_input.iter.value",
    )
    Stored.task_state_store.set("openflow_iterations__loop", [["completed", 10], ["completed", 20]])
    outcome = run_step(module(loop([1, 2, 3], body)), Stored())
    assert (outcome.kind, outcome.result) == (OutcomeKind.SUCCESS, [10, 20, 30])
    assert done.read_text() == "3"  # iterations 0 and 1 came from the checkpoint
    assert Stored.task_state_store.data == {}  # the loop ended: no checkpoint left


def test_a_while_loop_resumes_after_checkpointed_iterations(tmp_path: Path) -> None:
    class Stored(FakeRun):
        task_state_store = Store()

    Stored.task_state_store.set("openflow_iterations__w", [["completed", 0], ["completed", 1]])
    raw = {
        "id": "w",
        "value": {
            "type": "whileloopflow",
            "skip_failures": False,
            "modules": [py("a", "return i", i="flow_input.iter.index")],
        },
        "stop_after_if": {"expr": "result == 3"},
    }
    outcome = run_step(module(raw), Stored())
    assert (outcome.kind, outcome.result) == (OutcomeKind.SUCCESS, [0, 1, 2, 3])
    assert Stored.task_state_store.data == {}


def test_a_nested_loop_resumes_inside_the_outer_iteration_where_the_task_died(tmp_path: Path) -> None:
    class Stored(FakeRun):
        task_state_store = Store()

    ran, died = tmp_path / "ran", tmp_path / "died"
    step = py(
        "a",
        f"import pathlib\nran, died = pathlib.Path({str(ran)!r}), pathlib.Path({str(died)!r})\n"
        "if (o, i) == (1, 1) and not died.exists():\n"
        "    died.write_text('x')\n"
        "    raise KeyboardInterrupt  # the task is killed here, as by a lost worker\n"
        "ran.write_text((ran.read_text() if ran.exists() else '') + f'{o}{i} ')\n"
        "return o * 10 + i",
        o="flow_input.iter_parent.value",
        i="flow_input.iter.value",
    )
    inner = {**loop([0, 1, 2], step), "id": "inner"}
    outer = module(loop([0, 1], inner))
    with pytest.raises(KeyboardInterrupt):
        run_step(outer, Stored())
    assert ran.read_text() == "00 01 02 10 "
    assert len(Stored.task_state_store.data) == 2  # the outer loop's and outer iteration 1's inner loop's

    outcome = run_step(outer, Stored())  # the task's next try
    assert (outcome.kind, outcome.result) == (OutcomeKind.SUCCESS, [[0, 1, 2], [10, 11, 12]])
    assert ran.read_text() == "00 01 02 10 11 12 "  # nothing finished ran twice
    assert Stored.task_state_store.data == {}
