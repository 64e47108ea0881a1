"""The rules of Windmill's containers (loops, branches), shared by both of their executions: the
operators that run a container as Airflow tasks (operators/loop.py, branches.py, body.py) and the
in-task runner (runtime/container_runner.py).

What the iterator of a loop is, how many iterations run at once, which branch a branchone takes,
when a sequential loop or branchall ends, and what the container's outcome is once its bodies
ended (spec 2.1, 3.5, 4.4-4.8). No body runs here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_openflow.runtime.errors import ExpressionError
from airflow_openflow.runtime.expressions import EvalScope, evaluate_predicate, evaluate_transform
from airflow_openflow.runtime.outcomes import BodyKind, BodyOutcome, OutcomeKind, StepOutcome, stop_outcome
from airflow_openflow.spec.model import (
    Branch,
    BranchAll,
    BranchOne,
    FlowModule,
    ForloopFlow,
    InputTransform,
    PathFlow,
    StopAfterIf,
    WhileloopFlow,
)

CONTAINER_TYPES = (ForloopFlow, WhileloopFlow, BranchOne, BranchAll, PathFlow)


def is_container(module: FlowModule) -> bool:
    return isinstance(module.value, CONTAINER_TYPES)


def iteration_input(flow_input: Any, index: int, value: Any) -> dict[str, Any]:
    inputs = dict(flow_input) if isinstance(flow_input, Mapping) else {}
    if "iter" in inputs:
        inputs["iter_parent"] = inputs["iter"]
    inputs["iter"] = {"index": index, "value": value}
    return inputs


def loop_items(module: FlowModule, loop: ForloopFlow, scope: EvalScope) -> list[Any] | StepOutcome:
    """The evaluated iterator (a list), or the ``StepOutcome`` failing the flow when the iterator
    throws or is not an array (spec 3.5)."""
    try:
        items = evaluate_transform(loop.iterator, scope)
    except ExpressionError as exc:
        return flow_error(module, exc.error_object())
    if not isinstance(items, list):
        return flow_error(module, iterator_not_array_error(items))
    return items


def loop_width(transform: InputTransform | None, scope: EvalScope, count: int) -> int:
    """``parallelism`` caps how many iterations run at once; absent means all of them."""
    if transform is None:
        return count
    value = evaluate_transform(transform, scope)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1:
        return int(value)
    return count


def loop_outcome(
    module: FlowModule, loop: ForloopFlow, bodies: Iterable[BodyOutcome], scope: EvalScope
) -> StepOutcome:
    """The loop's ``StepOutcome`` from its iterations' outcomes, in index order (spec 4.4)."""
    results: list[Any] = []
    failed = False
    for body in bodies:
        results.append(body.result)
        failed = failed or (body.kind is BodyKind.FAILED and not loop.skip_failures)
        if not loop.parallel and ends_sequential_loop(module, loop, body, scope):
            break
    if failed:
        return StepOutcome(OutcomeKind.FAILED, results, f"for-loop {module.id!r}: an iteration failed")
    return after_all_iterations(module, results, scope)


def ends_sequential_loop(module: FlowModule, loop: ForloopFlow, body: BodyOutcome, scope: EvalScope) -> bool:
    """Whether a sequential loop ends after this iteration (spec 4.4): its first failure (unless
    ``skip_failures``: the error fills the slot), a stop inside the body (the flow goes on), or the
    loop's ``stop_after_if`` true on the iteration's result. A parallel loop runs every iteration."""
    if body.kind is BodyKind.FAILED:
        return not loop.skip_failures
    if body.kind is BodyKind.STOPPED:
        return True
    return break_after_iteration(module.stop_after_if, body.result, scope)


def choose_branch(module: FlowModule, value: BranchOne, previous: Any, scope: EvalScope) -> int | StepOutcome:
    """The index of the first branch whose predicate is truthy, -1 for the default; or the
    ``StepOutcome`` failing the flow when a predicate throws (spec 3.5, 4.7)."""
    for index, branch in enumerate(value.branches):
        try:
            if evaluate_predicate(branch.expr or "false", with_names(scope, result=previous)):
                return index
        except ExpressionError as exc:
            return flow_error(module, exc.error_object())
    return -1


def branch_modules(value: BranchOne, choice: int) -> list[FlowModule]:
    return value.default if choice < 0 else value.branches[choice].modules


def branch_one_outcome(
    module: FlowModule, choice: int, body: BodyOutcome | None, previous: Any
) -> StepOutcome:
    """The branchone's outcome: the chosen branch's last result (the previous result for an empty
    branch); a failure fails it; a stop inside the branch stops the flow."""
    label = "default branch" if choice < 0 else f"branch {choice}"
    if body is None:
        return StepOutcome(OutcomeKind.SUCCESS, previous, f"branchone {module.id!r}: {label} (empty)")
    message = f"branchone {module.id!r}: ran the {label}"
    if body.kind is BodyKind.FAILED:
        return StepOutcome(OutcomeKind.FAILED, body.result, message)
    if body.kind is BodyKind.STOPPED:
        return _propagated_stop(body, body.result, message)  # a stop in a chosen branch stops the flow
    return StepOutcome(OutcomeKind.SUCCESS, body.result, message)


def ends_sequential_branchall(branch: Branch, body: BodyOutcome) -> bool:
    """Whether a sequential branchall ends after this branch (spec 4.8): a failure without
    ``skip_failure``, or a stop (which stops the whole flow)."""
    return body.kind is BodyKind.STOPPED or (body.kind is BodyKind.FAILED and not branch.skip_failure)


def branch_all_outcome(
    module: FlowModule, value: BranchAll, bodies: Iterable[BodyOutcome], previous: Any
) -> StepOutcome:
    """The branchall's ``StepOutcome`` from its branches' outcomes, in branch order (spec 4.8)."""
    results: list[Any] = []
    failed = False
    for branch, body in zip(value.branches, bodies, strict=False):
        # An empty branch passes the previous result through, as an empty branchone does.
        results.append(body.result if branch.modules else previous)
        if body.kind is BodyKind.FAILED:
            if branch.skip_failure:
                continue
            failed = True
            if not value.parallel:
                break  # sequential: later branches do not run
            continue
        if body.kind is BodyKind.STOPPED and not value.parallel:
            # A stop inside a sequential branchall stops the whole flow, with the array so far.
            return _propagated_stop(body, results, f"branchall {module.id!r}: stopped in a branch")
    if failed:
        return StepOutcome(OutcomeKind.FAILED, results, f"branchall {module.id!r}: a branch failed")
    return StepOutcome(OutcomeKind.SUCCESS, results)


def _propagated_stop(body: BodyOutcome, result: Any, message: str) -> StepOutcome:
    stop = body.stop
    assert stop is not None  # a body that stopped carries its stop
    return StepOutcome(stop.kind, result, f"{message}: {stop.message}", retryable=False)


def break_after_iteration(stop: StopAfterIf | None, result: Any, scope: EvalScope) -> bool:
    """``stop_after_if`` on a loop module is its break condition, tested after each iteration."""
    if stop is None:
        return False
    return evaluate_predicate(stop.expr, with_names(scope, result=result, previous_result=result))


def after_all_iterations(module: FlowModule, results: list[Any], scope: EvalScope) -> StepOutcome:
    """``stop_after_all_iters_if``: evaluated once on the whole array; true stops the flow."""
    stop = module.stop_after_all_iters_if
    if stop is None:
        return StepOutcome(OutcomeKind.SUCCESS, results)
    try:
        stopped = evaluate_predicate(stop.expr, with_names(scope, result=results, previous_result=results))
    except ExpressionError as exc:
        return flow_error(module, exc.error_object())
    if not stopped:
        return StepOutcome(OutcomeKind.SUCCESS, results)
    return stop_outcome(stop, results)


def with_names(scope: EvalScope, **changes: Any) -> EvalScope:
    return dataclasses.replace(scope, **changes)


def flow_error(module: FlowModule, error: dict[str, Any]) -> StepOutcome:
    """An iterator or predicate that cannot be evaluated fails the flow; a retry cannot help."""
    error["error"].setdefault("step_id", module.id)
    return StepOutcome(
        OutcomeKind.FAILED, error, f"{module.id}: {error['error'].get('message')}", retryable=False
    )


def iterator_not_array_error(value: Any) -> dict[str, Any]:
    """Windmill's message (serde's wording): "Expected an array value in the iterator expression,
    found: invalid type: map, expected a sequence ..." (spec 3.5)."""
    if value is None:
        found = "invalid type: null"
    elif isinstance(value, bool):
        found = f"invalid type: boolean `{json.dumps(value)}`"
    elif isinstance(value, int):
        found = f"invalid type: integer `{value}`"
    elif isinstance(value, float):
        found = f"invalid type: floating point `{value}`"
    elif isinstance(value, str):
        found = f"invalid type: string {json.dumps(value)}"
    else:
        found = "invalid type: map"
    message = f"Expected an array value in the iterator expression, found: {found}, expected a sequence"
    return {"error": {"name": "IteratorNotArray", "message": message}}
