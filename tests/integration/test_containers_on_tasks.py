"""Loops and branches on Airflow tasks: one task instance per iteration, branch and body step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import airflow_openflow
from tests.flows import counting, flow, py

RENDEZVOUS = (
    "import pathlib, time\n"
    "pathlib.Path(d, f'here_{me}').write_text('x')\n"
    "deadline = time.time() + 60\n"
    "while not pathlib.Path(d, f'here_{1 - me}').exists():\n"
    "    if time.time() > deadline:\n"
    "        raise TimeoutError(f'{me} never saw {1 - me}')\n"
    "    time.sleep(0.1)\n"
    "return me"
)


def loop(*body: dict[str, Any], **value: Any) -> dict[str, Any]:
    return {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "parallel": True,
            "skip_failures": False,
            "iterator": {"type": "javascript", "expr": "flow_input.items"},
            "modules": list(body),
            **value,
        },
    }


def test_each_iteration_is_a_task_instance_and_they_overlap(tmp_path: Path) -> None:
    body = py("meet", RENDEZVOUS, d="flow_input.d", me="flow_input.iter.value")
    outcome = airflow_openflow.run_flow(flow(loop(body)), {"items": [0, 1], "d": str(tmp_path)})
    assert (outcome.status, outcome.result) == ("success", [0, 1])
    assert outcome.task_states["loop_iterations.meet[0]"] == "success"
    assert outcome.task_states["loop_iterations.meet[1]"] == "success"


def test_body_steps_read_their_iteration_and_outer_results_and_stops_end_one_iteration() -> None:
    first = {
        **py("first", "return [v, base]", v="flow_input.iter.value", base="results.base"),
        "stop_after_if": {"expr": "result[0] == 2"},
    }
    second = py("second", "return f + [p[0] * 10]", f="results.first", p="previous_result")
    outcome = airflow_openflow.run_flow(
        flow(py("base", "return 'b'"), loop(first, second), py("after", "return r", r="results.loop")),
        {"items": [1, 2, 3]},
    )
    assert outcome.status == "success"
    assert outcome.result == [[1, "b", 10], [2, "b"], [3, "b", 30]]
    assert outcome.task_states["loop_iterations.second[1]"] == "skipped"


def test_failures_follow_skip_failures_and_empty_iterators_give_an_empty_array() -> None:
    body = py("maybe", "if v == 1:\n    raise ValueError('one')\nreturn v", v="flow_input.iter.value")
    failed = airflow_openflow.run_flow(flow(loop(body)), {"items": [0, 1, 2]})
    assert failed.status == "failure" and failed.result[0] == 0 and failed.result[2] == 2
    assert failed.result[1]["error"]["name"] == "ValueError"
    tolerated = airflow_openflow.run_flow(
        flow(loop(body, skip_failures=True), py("n", "return len(r)", r="results.loop")), {"items": [0, 1, 2]}
    )
    assert (tolerated.status, tolerated.result) == ("success", 3)
    empty = airflow_openflow.run_flow(flow(loop(body)), {"items": []})
    assert (empty.status, empty.result) == ("success", [])


def branchall(*branches: list[dict[str, Any]], **value: Any) -> dict[str, Any]:
    return {
        "id": "all",
        "value": {
            "type": "branchall",
            "branches": [{"modules": modules, "skip_failure": False} for modules in branches],
            **value,
        },
    }


def test_parallel_branches_are_task_groups_that_overlap_and_stop_on_their_own(tmp_path: Path) -> None:
    meet0 = py("meet0", RENDEZVOUS, d="flow_input.d", me="0")
    meet1 = {**py("meet1", RENDEZVOUS, d="flow_input.d", me="1"), "stop_after_if": {"expr": "result == 1"}}
    after1 = py("after1", "return 'never'")
    after0 = py("after0", "return [p, mine]", p="previous_result", mine="results.meet0")
    outcome = airflow_openflow.run_flow(
        flow(branchall([meet0, after0], [meet1, after1])), {"d": str(tmp_path)}
    )
    assert (outcome.status, outcome.result) == ("success", [[0, 0], 1])
    assert outcome.task_states["all_branch_0.meet0"] == "success"
    assert outcome.task_states["all_branch_1.after1"] == "skipped"


def test_branchone_runs_the_chosen_group_and_a_stop_there_ends_the_flow() -> None:
    choice = {
        "id": "pick",
        "value": {
            "type": "branchone",
            "branches": [
                {
                    "expr": "previous_result == 'a'",
                    "modules": [py("on_a", "return ['a', base]", base="results.base")],
                },
                {
                    "expr": "previous_result == 'b'",
                    "modules": [{**py("on_b", "return 'stop here'"), "stop_after_if": {"expr": "true"}}],
                },
            ],
            "default": [py("on_default", "return 'default'")],
        },
    }
    document = flow(
        py("base", "return w", w="flow_input.which"),
        choice,
        py("after", "return ['after', p]", p="previous_result"),
    )
    a = airflow_openflow.run_flow(document, {"which": "a"})
    assert (a.status, a.result) == ("success", ["after", ["a", "a"]])
    assert (
        a.task_states["pick_branch_1.on_b"] == "skipped"
        and a.task_states["pick_default.on_default"] == "skipped"
    )
    b = airflow_openflow.run_flow(document, {"which": "b"})
    assert (b.status, b.result) == ("success", "stop here")
    assert b.task_states["after"] == "skipped"
    other = airflow_openflow.run_flow(document, {"which": "z"})
    assert (other.status, other.result) == ("success", ["after", "default"])


def test_a_sequential_loop_ends_at_its_first_failure_and_never_starts_later_iterations(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    body = py(
        "maybe",
        counting(str(runs), "if v == 1:\n    raise ValueError('one')\nreturn v"),
        v="flow_input.iter.value",
    )
    outcome = airflow_openflow.run_flow(flow(loop(body, parallel=False)), {"items": [0, 1, 2, 3]})
    assert outcome.status == "failure"
    assert outcome.result[0] == 0 and outcome.result[1]["error"]["name"] == "ValueError"
    assert len(outcome.result) == 2  # the array so far
    assert runs.read_text() == "xx"  # iterations 2 and 3 never ran
    states = [outcome.task_states[f"loop_iterations.maybe[{i}]"] for i in range(4)]
    assert states == ["success", "failed", "skipped", "skipped"]


def test_a_sequential_loop_breaks_on_its_stop_after_if_and_the_flow_goes_on() -> None:
    body = py("double", "return v * 2", v="flow_input.iter.value")
    stopping = {**loop(body, parallel=False), "stop_after_if": {"expr": "result >= 4"}}
    outcome = airflow_openflow.run_flow(
        flow(stopping, py("after", "return r", r="results.loop")), {"items": [1, 2, 3, 4]}
    )
    assert (outcome.status, outcome.result) == ("success", [2, 4])
    assert outcome.task_states["loop_iterations.double[2]"] == "skipped"
    assert outcome.task_states["loop_iterations.double[3]"] == "skipped"


def test_an_expression_parallelism_caps_the_iterations_running_at_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    body = py(
        "work",
        f"import pathlib, time\nlog = pathlib.Path({str(log)!r})\n"
        "def note(text):\n"
        "    with log.open('a') as f:\n"
        "        f.write(text + '\\n')\n"
        "note(f'start {v}')\ntime.sleep(0.5)\nnote(f'end {v}')\nreturn v",
        v="flow_input.iter.value",
    )
    width = {"type": "javascript", "expr": "flow_input.width"}
    outcome = airflow_openflow.run_flow(flow(loop(body, parallelism=width)), {"items": [0, 1, 2], "width": 1})
    assert (outcome.status, outcome.result) == ("success", [0, 1, 2])
    lines = log.read_text().splitlines()
    # One at a time: every start is followed by its own end.
    assert [lines[i].split()[1] for i in range(0, 6, 2)] == [lines[i].split()[1] for i in range(1, 6, 2)]


def test_a_body_steps_sleep_delays_the_next_step_of_its_iteration() -> None:
    first = py("first", "import time\nreturn time.time()")
    first["sleep"] = {"type": "javascript", "expr": "result > 0 ? 2 : 0"}
    second = py("second", "import time\nreturn time.time() - t", t="results.first")
    outcome = airflow_openflow.run_flow(flow(loop(first, second)), {"items": [0, 1]})
    assert outcome.status == "success"
    assert all(waited >= 2 for waited in outcome.result), outcome.result
    assert outcome.task_states["loop_iterations.first[1]"] == "success"


def test_a_sequential_branchall_runs_its_branches_one_after_another_on_tasks(tmp_path: Path) -> None:
    log = tmp_path / "log"
    note = f"import pathlib\nwith pathlib.Path({str(log)!r}).open('a') as f:\n    f.write(name + ' ')\n"

    def step(name: str, then: str = "return name") -> dict[str, Any]:
        return py(name, note + then, name=repr(name))

    ok = airflow_openflow.run_flow(
        flow(branchall([step("a1"), step("a2")], [], [step("c1")], parallel=False)), {}
    )
    assert (ok.status, ok.result) == ("success", ["a2", {}, "c1"])  # an empty branch: the previous result
    assert log.read_text() == "a1 a2 c1 "  # one branch after the other
    assert ok.task_states["all_branch_2.c1"] == "success"

    log.unlink()
    raising = step("b1", "raise ValueError('no')")
    failing = flow(branchall([raising], [step("d1")], [step("e1")], parallel=False))
    failed = airflow_openflow.run_flow(failing, {})
    assert failed.status == "failure" and failed.result[0]["error"]["name"] == "ValueError"
    assert len(failed.result) == 1  # the later branches never ran
    assert log.read_text() == "b1 "
    assert failed.task_states["all_branch_1.d1"] == "skipped"
    assert failed.task_states["all_branch_2.e1"] == "skipped"

    stopping = {**step("s1"), "stop_after_if": {"expr": "true"}}
    stopped = airflow_openflow.run_flow(
        flow(branchall([stopping], [step("t1")], parallel=False), step("after")), {}
    )
    # A stop inside a sequential branchall stops the whole flow with the array so far.
    assert (stopped.status, stopped.result) == ("success", ["s1"])
    assert stopped.task_states["all_branch_1.t1"] == "skipped" and stopped.task_states["after"] == "skipped"


def test_steps_named_like_the_helper_tasks_leave_them_an_underscore_and_run_as_usual() -> None:
    # The loop's iterator task and the branchone's chooser and first group move to `<name>_`.
    chosen = {**py("on_b", "return 'chosen'"), "stop_after_if": {"expr": "flow_input.stop"}}
    choice = {
        "id": "pick",
        "value": {
            "type": "branchone",
            "branches": [{"expr": "previous_result == 'b'", "modules": [chosen]}],
            "default": [py("on_default", "return 'default'")],
        },
    }
    document = flow(
        py("loop_items", "return [1, 2]"),
        loop(
            py("double", "return v * 2", v="flow_input.iter.value"),
            iterator={"type": "javascript", "expr": "results.loop_items"},
        ),
        py("pick_choose", "return 'b' if r == [2, 4] else 'x'", r="results.loop"),
        choice,
        py("pick_branch_0", "return ['last', p]", p="previous_result"),
    )
    ran = airflow_openflow.run_flow(document, {"stop": False})
    assert (ran.status, ran.result) == ("success", ["last", "chosen"])
    states = ran.task_states
    assert states["loop_items_"] == states["loop_iterations.double[1]"] == states["pick_choose_"] == "success"
    assert states["pick_branch_0_.on_b"] == "success" and states["pick_default.on_default"] == "skipped"
    stopped = airflow_openflow.run_flow(document, {"stop": True})  # the step after the stop is skipped
    assert (stopped.status, stopped.result) == ("success", "chosen")
    assert stopped.task_states["pick_branch_0"] == "skipped"
