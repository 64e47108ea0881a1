"""Go steps: Windmill's ``package inner`` / ``func main(...) (T, error)`` built and run with the
worker's Go toolchain; refused at load time without one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.runtime.scripts import run_script
from airflow_openflow.runtime.scripts.go import go_parameter_names
from airflow_openflow.spec import check_supported, load_flow
from airflow_openflow.spec.languages import runnable_languages

needs_go = pytest.mark.skipif(
    shutil.which("go") is None, reason="no Go toolchain (apt-get install golang-go)"
)

SCRIPT = """package inner

import (
\t"errors"
\t"fmt"
\t"strings"
)

type Item struct {
\tName string `json:"name"`
\tQty  int    `json:"qty"`
}

func main(who string, items []Item, a, b int, extra map[string]interface{}) (interface{}, error) {
\tfmt.Println("hello from go,", who)
\tif who == "nobody" {
\t\treturn nil, errors.New("nobody to greet")
\t}
\ttotal := 0
\tfor _, item := range items {
\t\ttotal += item.Qty
\t}
\tout := map[string]interface{}{"who": strings.ToUpper(who), "total": total, "sum": a + b}
\tout["extra"] = extra
\treturn out, nil
}
"""


def _run(content: str, args: dict[str, Any], tmp_path: Path, **kwargs: Any) -> Any:
    return run_script("go", content, args, step_id="a", workdir=tmp_path / "step", **kwargs)


@pytest.mark.parametrize(
    ("signature", "names"),
    [
        ("func main() (int, error)", []),
        ("func main(x string) (int, error)", ["x"]),
        ("func main(a, b int, c string) (int, error)", ["a", "b", "c"]),
        (
            "func main(f func(int, int) int, m map[string][]int, s struct { A, B int }) (int, error)",
            ["f", "m", "s"],
        ),
        ("func main(\n\tx string,\n\ty []string,\n) (int, error)", ["x", "y"]),
    ],
)
def test_parameter_names(signature: str, names: list[str]) -> None:
    assert go_parameter_names(f"package inner\n\n{signature} {{ return 0, nil }}\n") == names


@needs_go
def test_arguments_by_name_and_the_first_return_value(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    result = _run(SCRIPT, {"who": "ada", "items": [{"name": "tea", "qty": 2}, {"qty": 3}], "b": 4}, tmp_path)
    # a missing argument (a) and a missing map (extra) are Go's zero values
    assert result == {"who": "ADA", "total": 5, "sum": 4, "extra": None}
    assert "hello from go, ada" in capfd.readouterr().out


@needs_go
def test_a_non_nil_error_fails_the_step(tmp_path: Path) -> None:
    with pytest.raises(StepError) as caught:
        _run(SCRIPT, {"who": "nobody"}, tmp_path)
    assert caught.value.error["error"]["name"] == "Error"
    assert caught.value.error["error"]["message"] == "nobody to greet"


@needs_go
def test_a_wrong_argument_type_and_a_build_error_are_step_errors(tmp_path: Path) -> None:
    with pytest.raises(StepError, match='argument "a"'):
        _run(SCRIPT, {"who": "x", "a": "not a number"}, tmp_path)
    with pytest.raises(StepError, match="go build failed") as caught:
        _run("package inner\n\nfunc main() (int, error) {\n\treturn 1\n}\n", {}, tmp_path)
    assert "not enough return values" in caught.value.error["error"]["message"]


@needs_go
def test_results_of_other_shapes(tmp_path: Path) -> None:
    assert (
        _run(
            "package inner\n\nfunc main(n int) (int, error) {\n\treturn n * 2, nil\n}\n", {"n": 21}, tmp_path
        )
        == 42
    )
    only_error = "package inner\n\nfunc main() error {\n\treturn nil\n}\n"
    assert _run(only_error, {}, tmp_path) is None
    text = 'package inner\n\nfunc main() (string, error) {\n\treturn "caf\\u00e9", nil\n}\n'
    assert _run(text, {}, tmp_path) == "café"


@needs_go
def test_a_timeout_kills_the_program(tmp_path: Path) -> None:
    sleepy = (
        'package inner\n\nimport "time"\n\nfunc main() (int, error) {\n\ttime.Sleep(time.Minute)\n'
        "\treturn 1, nil\n}\n"
    )
    with pytest.raises(StepError, match="Timeout"):
        _run(sleepy, {}, tmp_path, timeout_s=20)


def _go_flow(tmp_path: Path) -> Path:
    step = {
        "id": "a",
        "value": {"type": "rawscript", "language": "go", "content": SCRIPT, "input_transforms": {}},
    }
    path = tmp_path / "go_flow.json"
    path.write_text(json.dumps({"summary": "go", "value": {"modules": [step]}}), encoding="utf-8")
    return path


def test_go_is_refused_at_load_time_without_a_toolchain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_openflow.spec.languages as languages

    assert "go" in runnable_languages()
    monkeypatch.setattr(languages.shutil, "which", lambda name: None)
    [problem] = [p for p in check_supported(load_flow(_go_flow(tmp_path)).flow) if p.severity == "error"]
    assert problem.json_path == "value.modules[0].value.language"
    assert "needs the Go toolchain" in problem.message and "golang-go" in problem.message
    assert "'go' is not on the PATH" in problem.message


@needs_go
def test_go_loads_with_a_toolchain(tmp_path: Path) -> None:
    assert [p for p in check_supported(load_flow(_go_flow(tmp_path)).flow) if p.severity == "error"] == []


@needs_go
def test_a_panic_fails_the_step_with_its_value(tmp_path: Path) -> None:
    panicking = 'package inner\n\nfunc main() (int, error) {\n\tpanic("boom")\n}\n'
    with pytest.raises(StepError) as caught:
        _run(panicking, {}, tmp_path)
    assert caught.value.error["error"]["name"] == "panic"
    assert caught.value.error["error"]["message"] == "boom"


def test_a_go_script_by_path_is_refused_without_a_toolchain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_openflow.spec.languages as languages

    (tmp_path / "f" / "lib").mkdir(parents=True)
    (tmp_path / "f" / "lib" / "order.go").write_text(SCRIPT, encoding="utf-8")
    step = {"id": "a", "value": {"type": "script", "path": "f/lib/order", "input_transforms": {}}}
    document = tmp_path / "f" / "app" / "uses_go.flow.json"
    document.parent.mkdir(parents=True)
    document.write_text(json.dumps({"summary": "go", "value": {"modules": [step]}}), encoding="utf-8")
    flow = load_flow(document, root=tmp_path).flow
    if shutil.which("go") is not None:
        assert [p for p in check_supported(flow) if p.severity == "error"] == []
    monkeypatch.setattr(languages.shutil, "which", lambda name: None)
    [problem] = [p for p in check_supported(flow) if p.severity == "error"]
    assert problem.json_path == "value.modules[0].value.path"
    assert "script 'f/lib/order': language 'go' needs the Go toolchain" in problem.message


@needs_go
def test_a_module_outside_the_standard_library_needs_the_module_proxy(tmp_path: Path) -> None:
    """Imports outside the standard library go through ``go mod tidy`` and the module proxy; where
    it cannot be reached (here: ``GOPROXY=off``) the step fails with Go's reason."""
    from airflow_openflow.runtime.scripts.go import run_go

    quote = (
        'package inner\n\nimport "rsc.io/quote"\n\n//require rsc.io/quote v1.5.2\n\n'
        "func main() (string, error) {\n\treturn quote.Go(), nil\n}\n"
    )
    with pytest.raises(StepError, match="go mod tidy failed") as caught:
        run_go(
            quote, {}, step_id="a", workdir=tmp_path / "step", env={"GOPROXY": "off", "GOFLAGS": "-mod=mod"}
        )
    assert "rsc.io/quote" in caught.value.error["error"]["message"]
    assert "require rsc.io/quote v1.5.2" in (tmp_path / "step" / "go.mod").read_text()
