"""TypeScript steps (deno, bun, nativets) in real DAG runs (``run_flow``): the ``wmill`` TS client on
the same Airflow state as Python, loops, retries, continue_on_error, timeouts, scripts by path
with the workspace's ``defaultTs``."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import airflow_openflow
from tests.flows import flow, script


def ts(step_id: str, language: str, content: str, **transforms: str) -> dict[str, Any]:
    """A TypeScript step (``language`` deno, bun or nativets) whose arguments are expressions."""
    return {
        "id": step_id,
        "value": {
            "type": "rawscript",
            "language": language,
            "content": textwrap.dedent(content),
            "input_transforms": {k: {"type": "javascript", "expr": v} for k, v in transforms.items()},
        },
    }


@pytest.fixture
def greeting_variable() -> Iterator[None]:
    """An Airflow Variable as a deployment provides it (the executor inherits it)."""
    os.environ["AIRFLOW_VAR_F__TEAM__GREETING"] = "hello"
    try:
        yield
    finally:
        os.environ.pop("AIRFLOW_VAR_F__TEAM__GREETING", None)


PY_START = """\
import wmill

def main():
    wmill.set_flow_user_state("from_python", {"n": 1})
    wmill.set_variable("f/team/written_by_python", "py")
    return "started"
"""

DENO_STEP = """\
import * as wmill from "npm:windmill-client@1.420.1";

export async function main(previous: string) {
  const fromPython = await wmill.getFlowUserState("from_python");
  await wmill.setFlowUserState("from_deno", { n: fromPython.n + 1, runtime: "deno" });
  return {
    previous,
    greeting: await wmill.getVariable("f/team/greeting"),
    byPython: await wmill.getVariable("f/team/written_by_python"),
    fromPython,
    workspace: wmill.getWorkspace(),
    root: await wmill.getRootJobId(),
    step: Deno.env.get("WM_FLOW_STEP_ID"),
  };
}
"""

BUN_STEP = """\
import * as wmill from "windmill-client";

export async function main() {
  const fromDeno = await wmill.getFlowUserState("from_deno");
  await wmill.setFlowUserState("from_bun", { n: fromDeno.n + 1, runtime: "bun" });
  await wmill.setVariable("f/team/written_by_bun", "bun");
  return { fromDeno, step: process.env.WM_FLOW_STEP_ID };
}
"""

NATIVE_STEP = """\
import * as wmill from "windmill-client";

export async function main() {
  return { fromBun: await wmill.getFlowUserState("from_bun") };
}
"""

PY_END = """\
import wmill

def main(deno, bun, native):
    return {
        "deno": deno,
        "bun": bun,
        "native": native,
        "from_bun": wmill.get_flow_user_state("from_bun"),
        "written_by_bun": wmill.get_variable("f/team/written_by_bun"),
    }
"""


def test_ts_client_shares_variables_and_flow_user_state_with_python_steps(greeting_variable: None) -> None:
    steps = flow(
        script("start", PY_START),
        ts("d", "deno", DENO_STEP, previous="results.start"),
        ts("b", "bun", BUN_STEP),
        ts("n", "nativets", NATIVE_STEP),
        script("end", PY_END, deno="results.d", bun="results.b", native="results.n"),
    )
    run = airflow_openflow.run_flow(steps, {})
    assert run.status == "success", run.result
    result = run.result
    assert result["deno"] == {
        "previous": "started",
        "greeting": "hello",
        "byPython": "py",
        "fromPython": {"n": 1},
        "workspace": "airflow",
        "root": run.run_id,
        "step": "d",
    }
    assert result["bun"] == {"fromDeno": {"n": 2, "runtime": "deno"}, "step": "b"}
    assert result["native"] == {"fromBun": {"n": 3, "runtime": "bun"}}
    assert result["from_bun"] == {"n": 3, "runtime": "bun"}
    assert result["written_by_bun"] == "bun"


def test_ts_steps_in_a_for_loop_each_iteration_its_own_task() -> None:
    body = [
        ts(
            "square",
            "deno",
            "export async function main(x: number, i: number) { return { i, sq: x * x }; }\n",
            x="flow_input.iter.value",
            i="flow_input.iter.index",
        ),
        ts(
            "label",
            "bun",
            "export function main(r: { i: number; sq: number }, tag = '#') {\n"
            "  return `${tag}${r.i}:${r.sq}`;\n}\n",
            r="results.square",
        ),
    ]
    loop = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "javascript", "expr": "flow_input.xs"},
            "skip_failures": False,
            "modules": body,
        },
    }
    run = airflow_openflow.run_flow(flow(loop), {"xs": [3, 4, 5]})
    assert run.status == "success", run.result
    assert run.result == ["#0:9", "#1:16", "#2:25"]
    assert run.task_states["loop_iterations.label[2]"] == "success"


def test_retries_and_continue_on_error_on_ts_steps(tmp_path: Path) -> None:
    counter = tmp_path / "tries"
    flaky = ts(
        "flaky",
        "bun",
        f"""\
        import {{ appendFileSync, readFileSync }} from "node:fs";
        export function main() {{
          appendFileSync({str(counter)!r}, "x");
          const tries = readFileSync({str(counter)!r}, "utf8").length;
          if (tries < 2) throw new RangeError(`try ${{tries}} failed`);
          return tries;
        }}
        """,
    )
    flaky["retry"] = {"constant": {"attempts": 2, "seconds": 1}}
    failing = ts(
        "failing",
        "deno",
        'export function main() { throw new TypeError("no stock"); }\n',
    )
    failing["continue_on_error"] = True
    after = script(
        "after",
        "def main(tries, err):\n"
        "    return {'tries': tries, 'name': err['error']['name'], 'msg': err['error']['message']}\n",
        tries="results.flaky",
        err="results.failing",
    )
    run = airflow_openflow.run_flow(flow(flaky, failing, after), {})
    assert run.status == "success", run.result
    assert run.result == {"tries": 2, "name": "TypeError", "msg": "no stock"}


def test_a_timeout_fails_the_step_and_kills_the_js_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    slow = ts(
        "slow",
        "deno",
        f"""\
        export async function main() {{
          await Deno.writeTextFile({str(pid_file)!r}, String(Deno.pid));
          await new Promise((resolve) => setTimeout(resolve, 120_000));
        }}
        """,
    )
    slow["timeout"] = 3
    run = airflow_openflow.run_flow(flow(slow), {})
    assert run.status == "failure"
    assert "Timeout" in run.result["error"]["message"], run.result
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_an_unsupported_client_call_fails_with_the_python_message() -> None:
    code = """\
        import { runScriptByPath } from "windmill-client";
        export async function main() { return await runScriptByPath("f/x"); }
        """
    run = airflow_openflow.run_flow(flow(ts("calls", "bun", code)), {})
    assert run.status == "failure"
    error = run.result["error"]
    assert error["name"] == "WmillNotSupported"
    assert "not supported on Airflow: wmill.runScriptByPath" in error["message"]


FLOW_BY_PATH = """\
summary: scripts by path in TypeScript
value:
  modules:
    - id: plain
      value:
        type: script
        path: f/lib/plain
        input_transforms:
          x: {type: javascript, expr: flow_input.x}
    - id: on_bun
      value:
        type: script
        path: f/lib/on_bun
        input_transforms:
          x: {type: javascript, expr: results.plain.x}
          seen: {type: javascript, expr: results.plain.seen}
    - id: on_deno
      value:
        type: script
        path: f/lib/on_deno
        input_transforms:
          x: {type: javascript, expr: results.on_bun.x}
          seen: {type: javascript, expr: results.on_bun.seen}
schema:
  type: object
  properties:
    x: {type: number}
"""

RUNTIME_OF = """\
export function main(x: number, seen: string[] = []) {
  return { x: x + 1, seen: [...seen, typeof Deno !== "undefined" ? "deno" : "bun"] };
}
"""


@pytest.mark.parametrize("default_ts", ["deno", "bun", None])
def test_scripts_by_path_take_their_language_from_the_suffix_and_defaultTs(
    tmp_path: Path, default_ts: str | None
) -> None:
    repo = tmp_path / "repo"
    lib = repo / "f" / "lib"
    lib.mkdir(parents=True)
    (repo / "wmill.yaml").write_text(f"defaultTs: {default_ts}\n" if default_ts else "includes: ['f/**']\n")
    (lib / "plain.ts").write_text(RUNTIME_OF)
    (lib / "on_bun.bun.ts").write_text(RUNTIME_OF)
    (lib / "on_deno.deno.ts").write_text(RUNTIME_OF)
    folder = repo / "f" / "flows" / "chain.flow"
    folder.mkdir(parents=True)
    (folder / "flow.yaml").write_text(FLOW_BY_PATH)
    run = airflow_openflow.run_flow(folder, {"x": 1})
    assert run.status == "success", run.result
    # A plain .ts is the workspace's defaultTs (bun when wmill.yaml does not say).
    assert run.result == {"x": 4, "seen": [default_ts or "bun", "bun", "deno"]}


PARALLEL_BODY = """\
import * as wmill from "windmill-client";
export async function main(x: number, branch: string) {
  await wmill.setFlowUserState(`seen_${branch}_${x}`, true);
  const seen = await wmill.getFlowUserState(`seen_${branch}_${x}`);
  return { branch, x, step: process.env.WM_FLOW_STEP_ID, seen };
}
"""


def test_ts_steps_in_parallel_branches_inside_one_task_each_reach_their_own_session() -> None:
    # A branchall nested in a loop runs inside the loop's iteration task; its parallel branches
    # run in threads of that task: each TS step is served by its own thread.
    branches = {
        "type": "branchall",
        "parallel": True,
        "branches": [
            {"modules": [ts(f"on_{runtime}", runtime, PARALLEL_BODY, x="flow_input.iter.value")]}
            for runtime in ("deno", "bun")
        ],
    }
    for branch, runtime in zip(branches["branches"], ("deno", "bun"), strict=True):
        branch["modules"][0]["value"]["input_transforms"]["branch"] = {"type": "static", "value": runtime}
    loop = {
        "id": "loop",
        "value": {
            "type": "forloopflow",
            "iterator": {"type": "javascript", "expr": "[1, 2]"},
            "skip_failures": False,
            "modules": [{"id": "both", "value": branches}],
        },
    }
    run = airflow_openflow.run_flow(flow(loop), {})
    assert run.status == "success", run.result
    assert run.result == [
        [
            {"branch": "deno", "x": x, "step": "on_deno", "seen": True},
            {"branch": "bun", "x": x, "step": "on_bun", "seen": True},
        ]
        for x in (1, 2)
    ]


def test_a_ts_failure_module_and_a_ts_step_in_a_sub_flow(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    child = repo / "f" / "lib" / "child.flow"
    child.mkdir(parents=True)
    (child / "double.deno.ts").write_text("export function main(n: number) { return n * 2; }\n")
    (child / "flow.yaml").write_text(
        "summary: child\nvalue:\n  modules:\n    - id: double\n      value:\n        type: rawscript\n"
        "        language: deno\n        content: '!inline double.deno.ts'\n        input_transforms:\n"
        "          n: {type: javascript, expr: flow_input.n}\n"
    )
    parent = repo / "f" / "lib" / "parent.flow"
    parent.mkdir(parents=True)
    (parent / "flow.yaml").write_text(
        textwrap.dedent(
            """\
            summary: parent
            value:
              modules:
                - id: call
                  value:
                    type: flow
                    path: f/lib/child
                    input_transforms:
                      n: {type: javascript, expr: flow_input.n}
                - id: check
                  value:
                    type: rawscript
                    language: bun
                    content: |
                      export function main(doubled: number) {
                        if (doubled > 10) throw new RangeError(`too big: ${doubled}`);
                        return doubled;
                      }
                    input_transforms:
                      doubled: {type: javascript, expr: results.call}
              failure_module:
                id: failure
                value:
                  type: rawscript
                  language: deno
                  content: |
                    export function main(error: { name: string; message: string }, seen: number) {
                      return { caught: error.name, detail: error.message, seen };
                    }
                  input_transforms:
                    error: {type: javascript, expr: previous_result.error}
                    seen: {type: javascript, expr: results.call}
            """
        )
    )
    ok = airflow_openflow.run_flow(parent, {"n": 4})
    assert (ok.status, ok.result) == ("success", 8)
    failed = airflow_openflow.run_flow(parent, {"n": 7})
    assert failed.status == "failure"
    assert failed.result == {"caught": "RangeError", "detail": "too big: 14", "seen": 14}


def test_windmill_same_worker_case_in_typescript() -> None:
    """Windmill's ``test_deno_flow_same_worker`` (spec 10.2 case 25) in deno and bun: ``a`` writes
    ``./shared/outer.txt``; a sequential loop writes ``inner.txt`` (``d``) and reads both (``e``);
    ``c`` reads both after the loop."""
    fs = 'import { readFileSync, writeFileSync } from "node:fs";\n'
    a = ts(
        "a",
        "deno",
        'export async function main() {\n  await Deno.writeTextFile("./shared/outer.txt", "false 1");\n}\n',
    )
    d = ts(
        "d",
        "bun",
        fs + 'export function main(v: number) { writeFileSync("./shared/inner.txt", `true ${v}`); }\n',
        v="flow_input.iter.value",
    )
    e = ts(
        "e",
        "deno",
        fs + "export function main() {\n"
        '  const read = (name: string) => readFileSync(`./shared/${name}`, "utf8");\n'
        '  return read("inner.txt") + "," + read("outer.txt");\n'
        "}\n",
    )
    loop = {
        "id": "b",
        "value": {
            "type": "forloopflow",
            "parallel": False,
            "iterator": {"type": "static", "value": [1, 2, 3]},
            "modules": [d, e],
        },
    }
    c = ts(
        "c",
        "bun",
        fs + "export function main(loop: string[]) {\n"
        '  const outer = readFileSync("./shared/outer.txt", "utf8");\n'
        '  return [outer, ...loop, readFileSync("./shared/inner.txt", "utf8")].join(",");\n'
        "}\n",
        loop="results.b",
    )
    document = flow(a, loop, c)
    document["value"]["same_worker"] = True
    run = airflow_openflow.run_flow(document, {})
    assert run.status == "success", run.result
    assert run.result == "false 1,true 1,false 1,true 2,false 1,true 3,false 1,true 3"
