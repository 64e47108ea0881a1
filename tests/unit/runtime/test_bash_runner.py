"""bash rawscripts (runtime/scripts/bash.py): positional args, last line / result.json, failures."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.runtime.scripts.bash import bash_argv, bash_signature, run_bash


def run(content: str, args: dict[str, Any] | None = None, *, workdir: pathlib.Path, **kw: Any) -> Any:
    return run_bash(textwrap.dedent(content), args or {}, step_id="b1", workdir=workdir, **kw)


def test_case_037_behaviour(tmp_path: pathlib.Path) -> None:
    # Step a: msg="$1" -> "hello world"; step b: numbers arrive as text, the result is the last line.
    a = run('msg="$1"\necho "hello $msg"\n', {"msg": "world"}, workdir=tmp_path / "a")
    assert a == "hello world"
    b = run(
        'greeting="$1"\ncount="$2"\nfor i in $(seq 1 "$count"); do\n  echo "$greeting #$i"\ndone\n',
        {"greeting": a, "count": 3},
        workdir=tmp_path / "b",
    )
    assert b == "hello world #3"


def test_signature_forms() -> None:
    content = textwrap.dedent(
        """\
        first="$1"
        second=$2
        third="${3}"
        fourth=${4}
        fifth="${5:-default}"   # comment
        first="$6"
        not_an_arg="$1 and more"
        echo "$first"
        """
    )
    assert bash_signature(content) == {
        1: "first",
        2: "second",
        3: "third",
        4: "fourth",
        5: "fifth",
        6: "first",
    }


def test_argument_texts() -> None:
    content = 'a="$1"\nb="$2"\nc="$3"\nd="$4"\ne="$5"\nf="$7"\n'
    args = {
        "a": "text with spaces",
        "b": 3,
        "c": {"k": ["v", 1.5], "é": True},
        "d": None,
        "e": False,
        "f": "x",
    }
    assert bash_argv(content, args) == [
        "text with spaces",
        "3",
        '{"k":["v",1.5],"é":true}',
        "",
        "false",
        "",  # $6 is declared nowhere
        "x",
    ]
    assert bash_argv("echo hi\n", {"a": 1}) == []


def test_missing_args_are_empty_strings(tmp_path: pathlib.Path) -> None:
    src = 'a="$1"\nb="$2"\necho "[$a][$b][$#]"\n'
    assert run(src, {"b": "B"}, workdir=tmp_path) == "[][B][2]"


def test_result_is_last_non_empty_line_trimmed(tmp_path: pathlib.Path) -> None:
    src = """
    echo first
    echo '  {"looks": "like json"}  '
    echo
    echo "   "
    echo "to stderr" >&2
    """
    assert run(src, workdir=tmp_path) == '{"looks": "like json"}'


def test_no_output_is_none(tmp_path: pathlib.Path) -> None:
    assert run("true\n", workdir=tmp_path) is None


def test_result_json(tmp_path: pathlib.Path) -> None:
    src = """
    n="$1"
    echo "ignored stdout"
    echo "{\\"n\\": $n, \\"list\\": [1, 2]}" > ./result.json
    """
    assert run(src, {"n": 7}, workdir=tmp_path) == {"n": 7, "list": [1, 2]}


def test_empty_result_json_falls_back_to_stdout(tmp_path: pathlib.Path) -> None:
    assert run(": > result.json\necho last\n", workdir=tmp_path) == "last"


def test_invalid_result_json(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StepError) as info:
        run("echo '{oops' > result.json\n", workdir=tmp_path)
    assert "result.json" in info.value.message


def test_non_zero_exit(tmp_path: pathlib.Path) -> None:
    src = """
    for i in 1 2 3 4 5 6 7; do echo "line $i"; done
    echo "bad thing" >&2
    exit 3
    """
    with pytest.raises(StepError) as info:
        run(src, workdir=tmp_path)
    err = info.value.error["error"]
    assert err["name"] == "ExecutionErr"
    assert err["message"].startswith("ExitCode: 3, last lines of output:")
    assert "bad thing" in err["message"] and "line 7" in err["message"]
    assert "line 1" not in err["message"]  # only the last 5 lines
    assert err["step_id"] == "b1"


def test_set_e_stops_at_the_first_failure(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StepError) as info:
        run("echo before\nfalse\necho after\n", workdir=tmp_path)
    assert "ExitCode: 1" in info.value.message
    assert "after" not in info.value.message


def test_cwd_env_and_stdin(tmp_path: pathlib.Path) -> None:
    assert run("pwd\n", workdir=tmp_path) == str(tmp_path)
    assert run('echo "$MY_VAR"\n', workdir=tmp_path, env={"MY_VAR": "v1"}) == "v1"
    assert run("cat; echo done\n", workdir=tmp_path) == "done"  # stdin is closed: cat ends at once


def test_unicode_round_trip(tmp_path: pathlib.Path) -> None:
    assert run('s="$1"\necho "$s ✓"\n', {"s": "café 🌍"}, workdir=tmp_path) == "café 🌍 ✓"


def test_output_is_streamed_to_the_task_log(
    tmp_path: pathlib.Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run("echo out-line\necho err-line >&2\n", workdir=tmp_path)
    captured = capfd.readouterr()
    assert "out-line" in captured.out
    assert "err-line" in captured.err


def test_timeout_kills_the_process_group(tmp_path: pathlib.Path) -> None:
    start = time.monotonic()
    with pytest.raises(StepError) as info:
        run("echo started\nsleep 30 &\nsleep 30\n", workdir=tmp_path, timeout_s=0.5)
    assert time.monotonic() - start < 20  # the 30 s sleeps were cut short
    assert info.value.name == "ExecutionErr"
    assert info.value.message.startswith("Timeout")
    assert "started" in info.value.message


# The step runs in a thread of the task process, as parallel branches do; the process is then
# killed outright, as the OOM killer does.
KILLED_TASK = """\
import os, pathlib, signal, sys, threading
from airflow_openflow.runtime.scripts.bash import run_bash

work = pathlib.Path(sys.argv[1])
script = f"echo $$ > {work}/pid.tmp && mv {work}/pid.tmp {work}/pid\\nsleep 30\\necho late > {work}/late\\n"
step = {"step_id": "b", "workdir": work}
threading.Thread(target=run_bash, args=(script, {}), kwargs=step, daemon=True).start()
while not (work / "pid").exists():
    pass
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_the_script_dies_with_a_killed_task_process(tmp_path: pathlib.Path) -> None:
    """SIGKILL of the process running the step (no clean-up of ours runs) also ends the script: it
    does not go on beside the step's retry."""
    task = subprocess.run([sys.executable, "-c", KILLED_TASK, str(tmp_path)], timeout=60, check=False)
    assert task.returncode == -signal.SIGKILL
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid), "the bash script outlived the killed task process"


def _running(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended (its new parent may not reap it at once)
