"""How a step, a body and a flow end: the outcome types every execution path shares.

A leaf module (it imports nothing of the runtime): the step semantics (runtime/step.py), the
container rules (runtime/container_rules.py), the in-task container runner
(runtime/container_runner.py) and the operators all speak these types.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_openflow.spec.model import StopAfterIf


class OutcomeKind(enum.StrEnum):
    """A step's outcome; its value is what a task records in XCom (``OUTCOME_KEY``)."""

    SUCCESS = "success"
    SKIPPED = "skipped"  # skip_if was true: the step behaves as an identity
    MOCKED = "mocked"
    STOPPED = "stopped"  # stop_after_if true, plain: the flow ends successfully here
    STOPPED_SKIPPED = "stopped_skipped"  # stop_after_if with skip_if_stopped: ends, labelled skipped
    ERROR_STOP = "error_stop"  # stop_after_if with error_message: the flow fails (EarlyStopError)
    CONTINUED_ERROR = "continued_error"  # failed, but continue_on_error: the error object is the result
    FAILED = "failed"
    # A body step (loop iteration or branch on tasks) that did not run because its container ended
    # before it: an earlier step or iteration stopped or failed it, or its branch was not chosen.
    # The value "cut" is what running tasks already store in XCom: it stays.
    CONTAINER_ENDED = "cut"


def outcome_kind(value: str | None) -> OutcomeKind | None:
    """The ``OutcomeKind`` recorded in XCom, or None for a step that did not finish."""
    return OutcomeKind(value) if value else None


#: Outcomes after which the flow does not go on to the next step.
ENDS_FLOW = frozenset({OutcomeKind.STOPPED, OutcomeKind.STOPPED_SKIPPED, OutcomeKind.ERROR_STOP})


@dataclass(frozen=True, slots=True)
class StepOutcome:
    kind: OutcomeKind
    result: Any  # what ``results.<id>`` reads; the error object for failures
    message: str = ""  # one line for the task log
    retryable: bool = True  # False for failures a retry cannot fix (a throwing predicate, a stop)


class BodyKind(enum.StrEnum):
    """How a module list (a loop iteration, a branch, a sub-flow) ended; the value is what a loop's
    checkpoints store."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BodyOutcome:
    """How a module list (a body, a branch) ended."""

    kind: BodyKind
    result: Any  # the last result, the stopping step's result, or the error
    #: the outcome of a stop (plain, skipped or error): set when kind is STOPPED, and for an error stop
    stop: StepOutcome | None = None


def stop_outcome(stop: StopAfterIf, value: Any) -> StepOutcome:
    """The outcome of a true ``stop_after_if`` / ``stop_after_all_iters_if`` (spec 2.1)."""
    if stop.error_message is not None:
        message = stop.error_message or f"stop after if: {stop.expr}"
        extra = {"result": value} if stop.error_include_result else {}
        return StepOutcome(
            OutcomeKind.ERROR_STOP,
            {"error": {"name": "EarlyStopError", "message": message, **extra}},
            f"`{stop.expr}` is true: the flow fails with EarlyStopError: {message}",
            retryable=False,
        )
    if stop.skip_if_stopped:
        return StepOutcome(
            OutcomeKind.STOPPED_SKIPPED, value, f"`{stop.expr}` is true: the flow ends (skipped)"
        )
    return StepOutcome(OutcomeKind.STOPPED, value, f"`{stop.expr}` is true: the flow ends here")


@dataclass(frozen=True, slots=True)
class FlowVerdict:
    """The flow's status and result, as Windmill defines them, from the outcomes of its steps."""

    status: str  # "success" | "failure"
    result: Any
    message: str
    skipped: bool = False  # a stop with skip_if_stopped


def flow_verdict(
    steps: list[tuple[str, OutcomeKind | None]],
    result_of: Callable[[str], Any],
    flow_input: Any,
) -> FlowVerdict:
    """``steps`` are the top-level steps in order, each with its outcome (None if it never finished).
    Only the decisive step's result is fetched through ``result_of``."""
    last_id: str | None = None  # None: an empty flow returns its input (spec 1.2)
    last_kind: OutcomeKind | None = None
    for step_id, kind in steps:
        if kind is None:
            # Not finished and no earlier stop: it failed without reporting (killed, marked failed in
            # the UI) or never ran because an earlier task did. Either way the flow did not complete.
            message = f"step {step_id!r} did not complete; see its task log in Airflow"
            return FlowVerdict(
                "failure",
                {"error": {"name": "StepDidNotComplete", "message": message, "step_id": step_id}},
                message,
            )
        if kind in (OutcomeKind.FAILED, OutcomeKind.ERROR_STOP):
            return FlowVerdict("failure", result_of(step_id), f"step {step_id!r} failed")
        if kind in (OutcomeKind.STOPPED, OutcomeKind.STOPPED_SKIPPED):
            return FlowVerdict(
                "success",
                result_of(step_id),
                f"stopped early after step {step_id!r}",
                skipped=kind is OutcomeKind.STOPPED_SKIPPED,
            )
        last_id, last_kind = step_id, kind
    if last_id is None:
        return FlowVerdict("success", flow_input, "empty flow: the result is the flow input")
    if last_kind is OutcomeKind.CONTINUED_ERROR:
        # continue_on_error on the last step still leaves the flow failed (spec 5.2).
        return FlowVerdict("failure", result_of(last_id), f"last step {last_id!r} failed (continue_on_error)")
    return FlowVerdict("success", result_of(last_id), "flow completed")


def error_name_value(failed_result: Any) -> dict[str, Any] | None:
    """The ``error`` name of a failure module's expressions (spec 3.3): the failed step's error
    object, or for a failed loop / branchall array one error listing its failed slots."""
    if isinstance(failed_result, dict) and isinstance(failed_result.get("error"), dict):
        return dict(failed_result["error"])
    if isinstance(failed_result, list):
        errors = [
            r["error"] for r in failed_result if isinstance(r, dict) and isinstance(r.get("error"), dict)
        ]
        if errors:
            message = "; ".join(f"{e.get('name')}: {e.get('message')}" for e in errors)
            return {"name": "MultipleErrors", "message": message, "errors": errors}
    return None


def with_failure_module(verdict: FlowVerdict, kind: OutcomeKind | None, result: Any) -> FlowVerdict:
    """The flow's verdict once the failure module ran (spec 5.1): its result is the flow result,
    the flow stays failed unless that result carries ``recover: true``, and a failure module that
    fails makes its own error the result."""
    if verdict.status != "failure" or kind is None:
        return verdict
    if kind in (OutcomeKind.FAILED, OutcomeKind.ERROR_STOP):
        return FlowVerdict("failure", result, f"{verdict.message}; the failure module failed too")
    if isinstance(result, dict) and result.get("recover") is True:
        return FlowVerdict("success", result, f"{verdict.message}; the failure module recovered the flow")
    return FlowVerdict("failure", result, f"{verdict.message}; the failure module ran")
