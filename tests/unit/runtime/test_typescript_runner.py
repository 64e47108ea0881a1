"""TypeScript rawscripts (runtime/scripts/typescript.py) on real Deno and Bun processes: Windmill's
wrapper rules (conformance cases-typescript/README.md), errors, timeouts, the runtimes and the
``wmill`` client's imports and calls through the bridge (runtime/wmill_bridge.py)."""

from __future__ import annotations

import json
import os
import pathlib
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.runtime.scripts import run_script
from airflow_openflow.runtime.scripts.typescript import find_runtime, rewrite_client_imports
from airflow_openflow.runtime.wmill_context import wmill_session
from airflow_openflow.runtime.wmill_session import WmillSession

RUNTIMES = ("deno", "bun")


def run(language: str, content: str, args: dict[str, Any] | None = None, **kw: Any) -> Any:
    workdir = kw.pop("workdir")
    return run_script(language, textwrap.dedent(content), args or {}, step_id="t1", workdir=workdir, **kw)


def failure(language: str, content: str, args: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    with pytest.raises(StepError) as info:
        run(language, content, args, **kw)
    error: dict[str, Any] = info.value.error["error"]
    return error


@pytest.mark.parametrize("language", RUNTIMES)
def test_arguments_bind_by_name_whatever_the_order_and_extra_keys_are_ignored(
    language: str, tmp_path: pathlib.Path
) -> None:
    code = """\
        export function main(width: number, height: number, unit: string) {
          return `${width}x${height} ${unit}`;
        }
        """
    args = {"unit": "cm", "unused": 1, "height": 3, "width": 7}
    assert run(language, code, args, workdir=tmp_path) == "7x3 cm"


@pytest.mark.parametrize("language", RUNTIMES)
def test_a_missing_argument_takes_the_default_and_an_explicit_null_stays_null(
    language: str, tmp_path: pathlib.Path
) -> None:
    code = """\
        export function main(
          text: string,
          times: number = 2,
          label: string | null = "fallback",
          width: number = text.length * times,
        ) {
          return { times, label, width };
        }
        """
    assert run(language, code, {"text": "abc", "label": None}, workdir=tmp_path) == {
        "times": 2,
        "label": None,
        "width": 6,
    }


@pytest.mark.parametrize("language", RUNTIMES)
def test_parameter_names_survive_types_and_defaults_full_of_commas(
    language: str, tmp_path: pathlib.Path
) -> None:
    code = """\
        // main's parameters, read from its source once the runtime stripped the types
        export async function main(
          data: { label: string; values: Array<number> },
          m: Map<string, [number, number]> = new Map([["a", [1, 2]]]),
          f: (a: string, b: number) => string = (a, b) => `${a},${b}`,
          s: string = "a,b)",
          t = `x${ {a: 1, b: 2}.a },(`,
          /* a comment, with a comma */ r: RegExp = /[,)]/g,
          { nested }: { nested: number } = { nested: 0 },
          last?: string,
        ) {
          return [data.label, m.size, f("x", 1), s, t, String(r), nested, last ?? null];
        }
        """
    args = {"data": {"label": "L", "values": []}, "last": "end", "nested": 99}
    # A destructured parameter has no name: it gets nothing (its default), as in Windmill.
    assert run(language, code, args, workdir=tmp_path) == ["L", 1, "x,1", "a,b)", "x1,(", "/[,)]/g", 0, "end"]


@pytest.mark.parametrize("language", RUNTIMES)
def test_an_arrow_main_binds_by_name_too(language: str, tmp_path: pathlib.Path) -> None:
    code = "export const main = async (b: number, a: number = 10) => ({ a, b });\n"
    assert run(language, code, {"b": 1}, workdir=tmp_path) == {"a": 10, "b": 1}


@pytest.mark.parametrize("language", RUNTIMES)
def test_the_result_is_awaited_json_with_undefined_as_null_and_bigint_as_text(
    language: str, tmp_path: pathlib.Path
) -> None:
    code = """\
        export async function main() {
          await new Promise((resolve) => setTimeout(resolve, 10));
          return {
            missing: undefined,
            holes: [1, undefined, 3],
            deep: { list: [{ k: undefined }] },
            big: 2n ** 64n,
            float: 0.5,
            nothing: null,
          };
        }
        """
    assert run(language, code, workdir=tmp_path) == {
        "missing": None,
        "holes": [1, None, 3],
        "deep": {"list": [{"k": None}]},
        "big": "18446744073709551616",
        "float": 0.5,
        "nothing": None,
    }


@pytest.mark.parametrize("language", RUNTIMES)
def test_a_main_returning_nothing_gives_null(language: str, tmp_path: pathlib.Path) -> None:
    assert run(language, "export async function main() {}\n", workdir=tmp_path) is None


@pytest.mark.parametrize("language", RUNTIMES)
def test_a_throw_is_the_error_object_name_message_stack(language: str, tmp_path: pathlib.Path) -> None:
    code = """\
        class StockError extends Error {
          constructor(message: string) {
            super(message);
            this.name = "StockError";
          }
        }
        export function main(wanted: number) {
          throw new StockError(`only 2 left, ${wanted} requested`);
        }
        """
    error = failure(language, code, {"wanted": 5}, workdir=tmp_path)
    assert error["name"] == "StockError"
    assert error["message"] == "only 2 left, 5 requested"
    assert "main.ts" in error["stack"] and error["step_id"] == "t1"


@pytest.mark.parametrize("language", RUNTIMES)
def test_a_thrown_value_that_is_no_error_and_a_rejected_promise(
    language: str, tmp_path: pathlib.Path
) -> None:
    error = failure(language, 'export function main() { throw "plain text"; }\n', workdir=tmp_path / "a")
    assert (error["name"], error["message"]) == ("Error", "plain text")
    code = "export async function main() { await Promise.reject(new TypeError('bad type')); }\n"
    error = failure(language, code, workdir=tmp_path / "b")
    assert (error["name"], error["message"]) == ("TypeError", "bad type")


@pytest.mark.parametrize("language", RUNTIMES)
def test_a_script_that_does_not_compile_or_has_no_main_fails_the_step(
    language: str, tmp_path: pathlib.Path
) -> None:
    error = failure(language, "export function main( {\n", workdir=tmp_path / "a")
    assert error["name"] == "SyntaxError", error
    assert "main.ts" in error["message"] + error["stack"]
    error = failure(language, "export function helper() { return 1; }\n", workdir=tmp_path / "b")
    assert error["name"] == "ScriptError" and "export async function main" in error["message"]


@pytest.mark.parametrize("language", RUNTIMES)
def test_output_goes_to_the_task_log(
    language: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = 'export function main() { console.log("to stdout"); console.error("to stderr"); return 1; }\n'
    assert run(language, code, workdir=tmp_path) == 1
    captured = capsys.readouterr()
    assert "to stdout" in captured.out and "to stderr" in captured.err


@pytest.mark.parametrize("language", RUNTIMES)
def test_a_timeout_kills_the_js_process(language: str, tmp_path: pathlib.Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"""\
        export async function main() {{
          const pid = typeof Deno !== "undefined" ? Deno.pid : process.pid;
          await (typeof Deno !== "undefined"
            ? Deno.writeTextFile({json.dumps(str(pid_file))}, String(pid))
            : Bun.write({json.dumps(str(pid_file))}, String(pid)));
          await new Promise((resolve) => setTimeout(resolve, 60_000));
          return "never";
        }}
        """
    started = time.monotonic()
    error = failure(language, code, workdir=tmp_path / "w", timeout_s=2)
    assert time.monotonic() - started < 30
    assert error["name"] == "ExecutionErr" and "Timeout" in error["message"] and "2 s" in error["message"]
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_nativets_runs_with_fetch_available(tmp_path: pathlib.Path) -> None:
    code = "export async function main(x: number) { return { x, fetch: typeof fetch }; }\n"
    assert run("nativets", code, {"x": 1}, workdir=tmp_path) == {"x": 1, "fetch": "function"}


@pytest.mark.parametrize("language", RUNTIMES)
def test_a_missing_runtime_says_what_to_install(
    language: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"OPENFLOW_{language.upper()}_PATH", str(tmp_path / "not-there"))
    error = failure(language, "export function main() { return 1; }\n", workdir=tmp_path / "w")
    assert error["name"] == "RuntimeNotFound"
    assert "pip install 'airflow-openflow[typescript]'" in error["message"]
    assert f"OPENFLOW_{language.upper()}_PATH" in error["message"]


def test_the_runtimes_come_from_the_python_packages_by_default() -> None:
    assert "site-packages" in find_runtime("bun") or os.environ.get("OPENFLOW_BUN_PATH")
    assert find_runtime("deno").endswith("deno")


def test_windmill_client_imports_are_sent_to_our_client() -> None:
    code = textwrap.dedent(
        """\
        import * as wmill from "windmill-client";
        import { getVariable } from 'npm:windmill-client@1.420.1';
        import * as old from "https://deno.land/x/windmill@v1.85.0/mod.ts";
        import { setState } from "jsr:@windmill-labs/windmill@1.2.3";
        import other from "windmill-client-extra";
        const text = "windmill-client is the name";
        """
    )
    rewritten = rewrite_client_imports(code)
    assert rewritten.count("./wmill.ts") == 4
    assert '"windmill-client-extra"' in rewritten and '"windmill-client is the name"' in rewritten
    assert rewritten.count("\n") == code.count("\n")  # same lines: stacks point at the script's lines


WMILL_IMPORTS = {
    "bun": 'import * as wmill from "windmill-client";',
    "deno": 'import * as wmill from "npm:windmill-client@1.420.1";',
}


@pytest.mark.parametrize("language", RUNTIMES)
def test_the_client_outside_a_flow_run_fails_clearly(language: str, tmp_path: pathlib.Path) -> None:
    code = f"""\
        {WMILL_IMPORTS[language]}
        export async function main() {{
          return await wmill.getVariable("f/team/greeting");
        }}
        """
    error = failure(language, code, workdir=tmp_path / "a")
    assert error["name"] == "WmillNotSupported"
    assert "only available while an OpenFlow step runs" in error["message"]
    code = f"""\
        {WMILL_IMPORTS[language]}
        export async function main() {{
          return await wmill.runScriptByPath("f/x");
        }}
        """
    error = failure(language, code, workdir=tmp_path / "b")
    assert error["name"] == "WmillNotSupported"
    assert error["message"].startswith(
        "not supported on Airflow: wmill.runScriptByPath (airflow-openflow supports:"
    )


class MemoryBackend:
    """The Airflow side of the ``wmill`` calls, in memory: what the bridge must reach."""

    workspace = "ws"
    root_job_id = "run-1"
    job_id = "job-1"
    flow_path = "f/team/flow"
    trigger = "user"
    checkpoint_epoch = 0
    first_try = False

    def __init__(self) -> None:
        self.values: dict[str, Any] = {"var:f/team/greeting": "hello", "flow:seed": 41}

    def get_flow_user_state(self, key: str) -> Any:
        return self.values.get(f"flow:{key}")

    def set_flow_user_state(self, key: str, value: Any) -> None:
        self.values[f"flow:{key}"] = value

    def get_persistent_state(self, path: str) -> Any:
        return self.values.get(f"state:{path}")

    def set_persistent_state(self, path: str, value: Any) -> None:
        self.values[f"state:{path}"] = value

    def get_variable(self, path: str) -> Any:
        if f"var:{path}" not in self.values:
            raise KeyError(f"no variable {path}")
        return self.values[f"var:{path}"]

    def set_variable(self, path: str, value: str, *, is_secret: bool, description: str) -> None:
        self.values[f"var:{path}"] = value

    def get_resource(self, path: str, *, none_if_undefined: bool) -> Any:
        return self.values.get(f"res:{path}")

    def set_resource(self, path: str, value: Any, *, resource_type: str) -> None:
        self.values[f"res:{path}"] = value

    def resume_urls(self, approver: str | None) -> dict[str, str]:
        return {"approvalPage": "a", "resume": "r", "cancel": f"c-{approver}"}

    def record_sub_tasks(self, records: list[dict[str, Any]]) -> None:
        pass


@pytest.fixture
def session() -> Iterator[tuple[WmillSession, MemoryBackend]]:
    backend = MemoryBackend()
    step = WmillSession(backend, "s1", "")
    environment = {"WM_WORKSPACE": "ws", "WM_STATE_PATH_NEW": "f/team/flow/s1_user"}
    step.environment.update(environment)
    with wmill_session(step, environment=environment):
        yield step, backend


CLIENT_CALLS = """\
{imports}
import type {{ Resource }} from "windmill-client";

export async function main(db: Resource<"postgresql"> = {{ host: "h" }}) {{
  const seed = await wmill.getFlowUserState("seed");
  await wmill.setFlowUserState("next", {{ n: seed + 1, big: 5n }});
  await wmill.setVariable("f/team/out", "written");
  await wmill.setResource({{ table: "events" }}, "f/team/cursor", "state");
  const before = await wmill.getState();
  await wmill.setState({{ cursor: 3 }});
  return {{
    db,
    seed,
    greeting: await wmill.getVariable("f/team/greeting"),
    cursor: await wmill.getResource("f/team/cursor"),
    absent: (await wmill.getResource("f/team/none", true)) ?? "undefined",
    before: before ?? "undefined",
    after: await wmill.getState(),
    internal: await wmill.getInternalState(),
    root: await wmill.getRootJobId(),
    workspace: wmill.getWorkspace(),
    statePath: wmill.getStatePath(),
    urls: await wmill.getResumeUrls("ada"),
    missingVariable: await wmill.getVariable("f/none").catch((e: Error) => `${{e.name}}: ${{e.message}}`),
  }};
}}
"""


@pytest.mark.parametrize("language", RUNTIMES)
def test_client_calls_reach_the_steps_session_through_the_bridge(
    language: str, tmp_path: pathlib.Path, session: tuple[WmillSession, MemoryBackend]
) -> None:
    _, backend = session
    code = CLIENT_CALLS.format(imports=WMILL_IMPORTS[language])
    result = run(language, code, workdir=tmp_path)
    assert result == {
        "db": {"host": "h"},
        "seed": 41,
        "greeting": "hello",
        "cursor": {"table": "events"},
        "absent": "undefined",
        "before": "undefined",
        "after": {"cursor": 3},
        "internal": {"cursor": 3},
        "root": "run-1",
        "workspace": "ws",
        "statePath": "f/team/flow/s1_user",
        "urls": {"approvalPage": "a", "resume": "r", "cancel": "c-ada"},
        "missingVariable": "KeyError: 'no variable f/none'",
    }
    assert backend.values["flow:next"] == {"n": 42, "big": "5"}
    assert backend.values["var:f/team/out"] == "written"
    assert backend.values["state:f/team/flow/s1_user"] == {"cursor": 3}


def test_the_bridge_refuses_a_caller_without_the_token(
    tmp_path: pathlib.Path, session: tuple[WmillSession, MemoryBackend]
) -> None:
    code = """\
        export async function main() {
          const url = Deno.env.get("OPENFLOW_WMILL_URL")!;
          const call = { call: "get_variable", args: { path: "f/team/greeting" } };
          const answer = await fetch(url, { method: "POST", body: JSON.stringify(call) });
          return [answer.status, url.startsWith("http://127.0.0.1:")];
        }
        """
    assert run("deno", code, workdir=tmp_path) == [403, True]


@pytest.mark.parametrize("language", RUNTIMES)
def test_npm_imports_install_into_the_user_cache_once(
    language: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Bun scripts use bare npm specifiers (installed automatically), Deno scripts npm: ones.
    monkeypatch.setenv("OPENFLOW_TS_CACHE_DIR", str(tmp_path / "cache"))
    specifier = {"bun": "is-odd", "deno": "npm:is-odd@3.0.1"}[language]
    code = f'import isOdd from "{specifier}";\nexport function main(n: number) {{ return isOdd(n); }}\n'
    assert run(language, code, {"n": 3}, workdir=tmp_path / "a") is True
    assert any((tmp_path / "cache").iterdir())  # the cache, not the step's folder
    capsys.readouterr()
    assert run(language, code, {"n": 4}, workdir=tmp_path / "b") is False
    assert "Download" not in capsys.readouterr().err  # the second run downloads nothing
