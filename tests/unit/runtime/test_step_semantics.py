"""runtime/step.py: the order and outcomes of a step's semantics, without Airflow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_openflow.runtime.outcomes import OutcomeKind, flow_verdict
from airflow_openflow.runtime.step import run_step
from airflow_openflow.runtime.step_context import StepContextDefaults
from airflow_openflow.spec import load_flow
from airflow_openflow.spec.model import FlowModule


@dataclass
class FakeRun(StepContextDefaults):
    flow_input: Any = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    previous: Any = None
    is_last_attempt: bool = True
    flow_env: Mapping[str, Any] = field(default_factory=dict)

    def previous_result(self) -> Any:
        return self.previous

    def result_of(self, step_id: str) -> Any:
        return self.results.get(step_id)

    def variable(self, path: str) -> Any:
        return f"var:{path}"

    def resource(self, path: str) -> Any:
        return {"path": path}


def module(**fields: Any) -> FlowModule:
    raw = {"id": "s", **fields}
    raw.setdefault(
        "value",
        {
            "type": "rawscript",
            "language": "python3",
            "content": "def main(x=None):\n    return x\n",
            "input_transforms": {"x": {"type": "javascript", "expr": "previous_result"}},
        },
    )
    return load_flow({"summary": "t", "value": {"modules": [raw]}}).flow.value.modules[0]


def test_plain_step_returns_the_script_result() -> None:
    outcome = run_step(module(), FakeRun(previous=7))
    assert (outcome.kind, outcome.result) == (OutcomeKind.SUCCESS, 7)


def test_skip_if_runs_before_anything_and_passes_the_previous_result() -> None:
    outcome = run_step(
        module(skip_if={"expr": "previous_result > 5"}, mock={"enabled": True, "return_value": 1}),
        FakeRun(previous=7),
    )
    assert (outcome.kind, outcome.result) == (OutcomeKind.SKIPPED, 7)


def test_mock_replaces_the_script() -> None:
    outcome = run_step(module(mock={"enabled": True, "return_value": {"m": 1}}), FakeRun(previous=7))
    assert (outcome.kind, outcome.result) == (OutcomeKind.MOCKED, {"m": 1})


@pytest.mark.parametrize(
    ("stop", "kind", "result"),
    [
        ({"expr": "result > 5"}, OutcomeKind.STOPPED, 7),
        ({"expr": "result > 5", "skip_if_stopped": True}, OutcomeKind.STOPPED_SKIPPED, 7),
        (
            {"expr": "result > 5", "error_message": "too big"},
            OutcomeKind.ERROR_STOP,
            {"error": {"name": "EarlyStopError", "message": "too big"}},
        ),
        (
            {"expr": "result > 5", "error_message": "too big", "error_include_result": True},
            OutcomeKind.ERROR_STOP,
            {"error": {"name": "EarlyStopError", "message": "too big", "result": 7}},
        ),
        (
            {"expr": "result > 5", "error_message": ""},
            OutcomeKind.ERROR_STOP,
            {"error": {"name": "EarlyStopError", "message": "stop after if: result > 5"}},
        ),
        ({"expr": "result > 50"}, OutcomeKind.SUCCESS, 7),
    ],
)
def test_stop_after_if_outcomes(stop: dict[str, Any], kind: OutcomeKind, result: Any) -> None:
    outcome = run_step(module(stop_after_if=stop), FakeRun(previous=7))
    assert (outcome.kind, outcome.result) == (kind, result)


def failing() -> dict[str, Any]:
    return {
        "type": "rawscript",
        "language": "python3",
        "content": "def main():\n    raise ValueError('no')\n",
        "input_transforms": {},
    }


def test_failure_is_retryable_until_the_last_attempt_then_continue_on_error_applies() -> None:
    step = module(value=failing(), continue_on_error=True)
    early = run_step(step, FakeRun(is_last_attempt=False))
    assert early.kind is OutcomeKind.FAILED and early.retryable
    last = run_step(step, FakeRun(is_last_attempt=True))
    assert last.kind is OutcomeKind.CONTINUED_ERROR
    assert last.result["error"]["name"] == "ValueError" and last.result["error"]["step_id"] == "s"


def test_throwing_predicate_fails_without_retry() -> None:
    outcome = run_step(module(skip_if={"expr": "null.x"}), FakeRun())
    assert outcome.kind is OutcomeKind.FAILED and not outcome.retryable
    assert "null.x" in outcome.result["error"]["message"]


def test_throwing_transform_is_an_ordinary_retryable_step_failure() -> None:
    step = module(
        value={
            "type": "rawscript",
            "language": "python3",
            "content": "def main(x):\n    return x\n",
            "input_transforms": {"x": {"type": "javascript", "expr": "results.a.b"}},
        }
    )
    outcome = run_step(step, FakeRun(is_last_attempt=False))
    assert outcome.kind is OutcomeKind.FAILED and outcome.retryable


def test_a_transform_whose_value_hijacks_to_json_fails_the_step_with_its_error_object() -> None:
    step = module(
        value={
            "type": "rawscript",
            "language": "python3",
            "content": "def main(x):\n    return x\n",
            "input_transforms": {
                "x": {
                    "type": "javascript",
                    "expr": "(Object.prototype.toJSON = function () { throw new Error('no JSON') }, {a: 1})",
                }
            },
        },
        continue_on_error=True,
    )
    outcome = run_step(step, FakeRun())
    assert outcome.kind is OutcomeKind.CONTINUED_ERROR
    assert outcome.result["error"]["name"] == "Error" and "no JSON" in outcome.result["error"]["message"]
    assert outcome.result["error"]["step_id"] == "s"


class BrokenStore(FakeRun):
    def result_of(self, step_id: str) -> Any:
        raise ConnectionError("the result store is down")


def test_a_failure_inside_the_runtime_is_the_step_error_object_not_a_crash() -> None:
    raw_value = {
        "type": "rawscript",
        "language": "python3",
        "content": "def main(x):\n    return x\n",
        "input_transforms": {"x": {"type": "javascript", "expr": "results.a"}},
    }
    step = module(value=raw_value, continue_on_error=True)
    early = run_step(step, BrokenStore(is_last_attempt=False))
    assert early.kind is OutcomeKind.FAILED and early.retryable
    last = run_step(step, BrokenStore(is_last_attempt=True))
    assert last.kind is OutcomeKind.CONTINUED_ERROR
    error = last.result["error"]
    assert (error["name"], error["message"], error["step_id"]) == (
        "ConnectionError",
        "the result store is down",
        "s",
    )
    assert "Traceback" in error["stack"]
    # A retry_if that cannot be read either: no retry, so continue_on_error applies at once.
    guarded = module(
        value=raw_value,
        continue_on_error=True,
        retry={"constant": {"attempts": 2, "seconds": 0}, "retry_if": {"expr": "results.a"}},
    )
    assert run_step(guarded, BrokenStore(is_last_attempt=False)).kind is OutcomeKind.CONTINUED_ERROR


def test_base_exceptions_of_the_task_pass_through() -> None:
    class Terminated(BaseException):  # what Airflow raises into a task it stops
        pass

    class Stopping(FakeRun):
        def previous_result(self) -> Any:
            raise Terminated

    with pytest.raises(Terminated):
        run_step(module(), Stopping())


def test_identity_returns_the_previous_result() -> None:
    assert run_step(module(value={"type": "identity"}), FakeRun(previous=[1])).result == [1]


RESULTS = {"a": 1, "b": {"error": {"name": "E"}}, "c": 3}


@pytest.mark.parametrize(
    ("steps", "status", "result"),
    [
        ([], "success", {"in": 1}),
        ([("a", OutcomeKind.SUCCESS), ("c", OutcomeKind.SUCCESS)], "success", 3),
        ([("a", OutcomeKind.SUCCESS), ("b", OutcomeKind.FAILED), ("c", None)], "failure", RESULTS["b"]),
        ([("a", OutcomeKind.STOPPED), ("b", None), ("c", None)], "success", 1),
        ([("a", OutcomeKind.SUCCESS), ("b", OutcomeKind.CONTINUED_ERROR)], "failure", RESULTS["b"]),
        ([("b", OutcomeKind.CONTINUED_ERROR), ("c", OutcomeKind.SUCCESS)], "success", 3),
        ([("a", OutcomeKind.SKIPPED), ("c", OutcomeKind.SKIPPED)], "success", 3),
    ],
)
def test_flow_verdict(steps: list[tuple[str, OutcomeKind | None]], status: str, result: Any) -> None:
    verdict = flow_verdict(steps, RESULTS.__getitem__, {"in": 1})
    assert (verdict.status, verdict.result) == (status, result)


def test_flow_verdict_reports_a_step_that_never_finished() -> None:
    verdict = flow_verdict([("a", OutcomeKind.SUCCESS), ("b", None)], RESULTS.__getitem__, {})
    assert verdict.status == "failure" and verdict.result["error"]["name"] == "StepDidNotComplete"


def test_a_mocked_step_still_applies_stop_after_if() -> None:
    outcome = run_step(
        module(mock={"enabled": True, "return_value": 0}, stop_after_if={"expr": "result == 0"}), FakeRun()
    )
    assert (outcome.kind, outcome.result) == (OutcomeKind.STOPPED, 0)


def test_failure_module_verdicts() -> None:
    from airflow_openflow.runtime.outcomes import FlowVerdict, with_failure_module

    failed = FlowVerdict("failure", {"error": {"name": "E"}}, "step 'a' failed")
    assert with_failure_module(failed, OutcomeKind.SUCCESS, {"handled": 1}).status == "failure"
    assert with_failure_module(failed, OutcomeKind.SUCCESS, {"handled": 1}).result == {"handled": 1}
    recovered = with_failure_module(failed, OutcomeKind.SUCCESS, {"recover": True})
    assert (recovered.status, recovered.result) == ("success", {"recover": True})
    broken = with_failure_module(failed, OutcomeKind.FAILED, {"error": {"name": "F"}})
    assert (broken.status, broken.result) == ("failure", {"error": {"name": "F"}})
    ok = FlowVerdict("success", 1, "flow completed")
    assert with_failure_module(ok, None, None) is ok


@pytest.mark.parametrize("language", ["python3", "bash"])
@pytest.mark.parametrize(
    "timeout", [{"type": "static", "value": 0.5}, {"type": "javascript", "expr": "0.25 * 2"}]
)
def test_a_script_longer_than_its_timeout_fails(language: str, timeout: dict[str, Any]) -> None:
    content = "import time\ndef main():\n    time.sleep(30)\n" if language == "python3" else "sleep 30\n"
    raw = {"type": "rawscript", "language": language, "content": content, "input_transforms": {}}
    import time

    started = time.monotonic()
    outcome = run_step(module(value=raw, timeout=timeout), FakeRun())
    assert time.monotonic() - started < 20  # the 30 s sleep was cut short
    assert outcome.kind is OutcomeKind.FAILED
    error = outcome.result["error"]
    assert "0.5 s" in error["message"] and error["name"] in ("TimeoutError", "ExecutionErr")


def test_cache_ttl_reuses_a_result_for_the_same_script_and_arguments(tmp_path: Any) -> None:
    store: dict[str, Any] = {}

    class CachingRun(FakeRun):
        def cache_get(self, key: str) -> Any:
            return (store[key],) if key in store else None

        def cache_set(self, key: str, result: Any, ttl: float) -> None:
            store[key] = result

    counter = tmp_path / "runs"
    raw = {
        "type": "rawscript",
        "language": "python3",
        "input_transforms": {"x": {"type": "javascript", "expr": "previous_result"}},
        "content": f"import pathlib\ndef main(x):\n    p = pathlib.Path({str(counter)!r})\n"
        "    p.write_text((p.read_text() if p.exists() else '') + 'x')\n    return x * 2\n",
    }
    step = module(value=raw, cache_ttl=60)
    assert run_step(step, CachingRun(previous=2)).result == 4
    assert run_step(step, CachingRun(previous=2)).result == 4  # from the cache
    assert run_step(step, CachingRun(previous=3)).result == 6  # other arguments: runs
    assert counter.read_text() == "xx"
