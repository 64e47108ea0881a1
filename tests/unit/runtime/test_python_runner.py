"""python3 rawscripts (runtime/scripts/python.py): arguments by signature, results, failures."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import sys
import textwrap
from typing import Any

import pytest

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.runtime.scripts import SUPPORTED_LANGUAGES, run_script
from airflow_openflow.runtime.scripts.python import run_python, to_json_compatible


def run(content: str, args: dict[str, Any] | None = None, *, workdir: pathlib.Path, **kw: Any) -> Any:
    return run_python(textwrap.dedent(content), args or {}, step_id="s1", workdir=workdir, **kw)


def test_arguments_by_signature(tmp_path: pathlib.Path) -> None:
    src = """
    def main(x, y, z=3):
        return [x, y, z]
    """
    assert run(src, {"x": 1, "y": "two"}, workdir=tmp_path) == [1, "two", 3]
    assert run(src, {"x": 1, "y": 2, "z": None}, workdir=tmp_path) == [1, 2, None]
    # args main does not take are dropped
    assert run(src, {"x": 1, "y": 2, "unused": 9}, workdir=tmp_path) == [1, 2, 3]


def test_var_kwargs_receive_the_rest(tmp_path: pathlib.Path) -> None:
    src = """
    def main(a, *, b=0, **rest):
        return {"a": a, "b": b, "rest": rest}
    """
    assert run(src, {"a": 1, "c": 3, "d": [4]}, workdir=tmp_path) == {
        "a": 1,
        "b": 0,
        "rest": {"c": 3, "d": [4]},
    }


def test_missing_required_argument(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StepError) as info:
        run("def main(x, needed):\n    return x\n", {"x": 1}, workdir=tmp_path)
    err = info.value.error["error"]
    assert err["name"] == "TypeError"
    assert "'needed'" in err["message"]
    assert err["step_id"] == "s1"


def test_no_main(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StepError) as info:
        run("x = 1\n", workdir=tmp_path)
    assert info.value.name == "ScriptError"
    assert "main" in info.value.message


def test_exception_becomes_error_object(tmp_path: pathlib.Path) -> None:
    src = """
    def helper(items):
        return items[5]

    def main(items):
        return helper(items)
    """
    with pytest.raises(StepError) as info:
        run(src, {"items": [1]}, workdir=tmp_path)
    err = info.value.error["error"]
    assert err["name"] == "IndexError"
    assert err["message"] == "list index out of range"
    assert err["step_id"] == "s1"
    stack = err["stack"]
    assert stack.startswith("Traceback (most recent call last):")
    assert "in main" in stack and "in helper" in stack and "return items[5]" in stack
    assert "python.py" not in stack  # the runner's own frames are left out
    assert stack.rstrip().endswith("IndexError: list index out of range")


def test_custom_exception_class_name(tmp_path: pathlib.Path) -> None:
    src = """
    class QuotaExceeded(Exception):
        pass

    def main():
        raise QuotaExceeded("too many: 3")
    """
    with pytest.raises(StepError) as info:
        run(src, workdir=tmp_path)
    assert (info.value.name, info.value.message) == ("QuotaExceeded", "too many: 3")


def test_error_at_module_level_and_sys_exit(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StepError) as info:
        run("import json\njson.loads('{')\ndef main():\n    return 1\n", workdir=tmp_path)
    assert info.value.name == "JSONDecodeError"
    with pytest.raises(StepError) as info:
        run("import sys\ndef main():\n    sys.exit(3)\n", workdir=tmp_path)
    assert info.value.name == "SystemExit"


def test_syntax_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StepError) as info:
        run("def main():\n    return (1 +\n\nx = ]\n", workdir=tmp_path)
    assert info.value.name == "SyntaxError"
    assert "line " in info.value.message


def test_results(tmp_path: pathlib.Path) -> None:
    assert run("def main():\n    return None\n", workdir=tmp_path) is None
    assert run("def main():\n    pass\n", workdir=tmp_path) is None
    assert run("def main():\n    return (1, (2, 'x'))\n", workdir=tmp_path) == [1, [2, "x"]]
    src = """
    import datetime
    def main():
        return {
            "when": datetime.datetime(2024, 5, 1, 12, 30),
            "day": datetime.date(2024, 5, 1),
            "raw": b"hi",
            1: "int key",
            "uni": "café 🌍",
        }
    """
    assert run(src, workdir=tmp_path) == {
        "when": "2024-05-01T12:30:00",
        "day": "2024-05-01",
        "raw": "aGk=",
        "1": "int key",
        "uni": "café 🌍",
    }


def test_async_main(tmp_path: pathlib.Path) -> None:
    src = """
    import asyncio
    async def main(n):
        await asyncio.sleep(0)
        return n * 2
    """
    assert run(src, {"n": 21}, workdir=tmp_path) == 42


@pytest.mark.parametrize(
    ("expr", "type_name"),
    [("{1, 2}", "set"), ("object()", "object"), ("float('nan')", "nan"), ("{'k': [lambda: 1]}", "function")],
)
def test_non_json_result(tmp_path: pathlib.Path, expr: str, type_name: str) -> None:
    with pytest.raises(StepError) as info:
        run(f"def main():\n    return {expr}\n", workdir=tmp_path)
    assert info.value.name == "SerializationError"
    assert type_name in info.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a = []\n    a.append(a)\n    return a", "contains itself"),
        ("a = []\n    for _ in range(100_000):\n        a = [a]\n    return a", "nested too deeply"),
        (
            "import collections.abc\n"
            "    class M(collections.abc.Mapping):\n"
            "        __getitem__ = __len__ = lambda *a: 1\n"
            "        def __iter__(self):\n"
            "            raise RuntimeError('no iteration')\n"
            "    return M()",
            "RuntimeError: no iteration",
        ),
    ],
)
def test_results_that_cannot_be_converted_are_step_errors(
    tmp_path: pathlib.Path, body: str, message: str
) -> None:
    with pytest.raises(StepError) as info:
        run(f"def main():\n    {body}\n", workdir=tmp_path)
    assert info.value.name == "SerializationError" and message in info.value.message


def test_an_exception_whose_str_fails_still_has_an_error_object(tmp_path: pathlib.Path) -> None:
    src = """
    class Odd(Exception):
        def __str__(self):
            raise ValueError("no text")

    def main():
        raise Odd()
    """
    with pytest.raises(StepError) as info:
        run(src, workdir=tmp_path)
    assert (info.value.name, info.value.message) == ("Odd", "<Odd: str() failed>")


def test_a_script_that_replaces_or_closes_stdout_does_not_break_the_task(tmp_path: pathlib.Path) -> None:
    stdout, stderr = sys.stdout, sys.stderr
    assert (
        run(
            "import sys\ndef main():\n    sys.stdout = None\n    sys.stderr = 3\n    return 1\n",
            workdir=tmp_path,
        )
        == 1
    )
    assert (sys.stdout, sys.stderr) == (stdout, stderr)


def test_cwd_is_workdir_and_restored(tmp_path: pathlib.Path) -> None:
    before = os.getcwd()
    src = """
    import os
    def main():
        with open("out.txt", "w") as f:
            f.write("x")
        return os.getcwd()
    """
    assert run(src, workdir=tmp_path) == str(tmp_path)
    assert (tmp_path / "out.txt").read_text() == "x"
    assert os.getcwd() == before
    with pytest.raises(StepError):
        run("def main():\n    raise ValueError('x')\n", workdir=tmp_path)
    assert os.getcwd() == before


def test_module_is_registered_only_while_running(tmp_path: pathlib.Path) -> None:
    src = """
    import dataclasses, sys
    @dataclasses.dataclass
    class P:
        x: int
    def main():
        return [__name__, __name__ in sys.modules, dataclasses.asdict(P(1))]
    """
    assert run(src, workdir=tmp_path, module_name="my_step") == ["my_step", True, {"x": 1}]
    assert "my_step" not in sys.modules


def test_fresh_module_each_run(tmp_path: pathlib.Path) -> None:
    src = """
    state = []
    def main():
        state.append(1)
        return len(state)
    """
    assert run(src, workdir=tmp_path) == 1
    assert run(src, workdir=tmp_path) == 1


def test_prints_go_to_the_task_output(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(
        "import sys\ndef main():\n    print('to stdout')\n    print('to stderr', file=sys.stderr)\n",
        workdir=tmp_path,
    )
    captured = capsys.readouterr()
    assert "to stdout" in captured.out
    assert "to stderr" in captured.err


def test_arguments_are_passed_as_given(tmp_path: pathlib.Path) -> None:
    args = {"data": {"k": [1, 2]}}
    assert run("def main(data):\n    data['k'].append(3)\n    return data\n", args, workdir=tmp_path) == {
        "k": [1, 2, 3]
    }


def test_run_script_dispatch(tmp_path: pathlib.Path) -> None:
    assert SUPPORTED_LANGUAGES[:5] == ("python3", "bash", "deno", "bun", "nativets")
    assert {"go", "postgresql", "mysql"} <= set(SUPPORTED_LANGUAGES)
    assert (
        run_script("python3", "def main(a):\n    return a + 1\n", {"a": 1}, step_id="p", workdir=tmp_path)
        == 2
    )
    assert run_script("bash", 'a="$1"\necho "got $a"\n', {"a": 5}, step_id="b", workdir=tmp_path) == "got 5"
    with pytest.raises(StepError) as info:
        run_script("nu", "def main [] {}", {}, step_id="d", workdir=tmp_path)
    assert info.value.name == "NotSupported"


def test_to_json_compatible_keys_and_values() -> None:
    assert to_json_compatible({True: 1, None: 2, 1.5: 3}) == {"true": 1, "null": 2, "1.5": 3}
    assert to_json_compatible(dt.time(1, 2)) == "01:02:00"
    with pytest.raises(StepError):
        to_json_compatible({(1, 2): "tuple key"})
