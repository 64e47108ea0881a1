"""Loops and branches executed inside one task: the in-task execution of container modules.

Used for what one Airflow task runs as a whole: a container step at the top level of a flow, and
containers nested where Airflow cannot map them (a loop inside a loop, while loops). Every leaf
step still goes through ``run_step``, so a step means the same thing wherever it runs.

The rules are Windmill's (spec 2.1, 3.3, 3.4, 4.4-4.8, 11):
- a body is a sub-flow: its ``flow_input`` is the parent's (plus ``iter`` in a for-loop, with the
  outer ``iter`` kept as ``iter_parent``), its first step's ``previous_result`` is that input, and
  its steps read outer results through ``results.<id>``; its own step results are not visible
  outside (the container's result is);
- a loop / branchall result is the array of each body's last result in index order, failed-but-
  tolerated slots holding the error object;
- ``stop_after_if`` inside a body: breaks a sequential loop (the flow goes on), ends only that
  iteration / branch when parallel, and stops the whole flow from a sequential branchall or a
  branchone branch.

Parallel loops and branches run their bodies at the same time, in threads of the task (at most
``parallelism`` at once); results keep index order. Python steps in those threads share the task's
working directory (a process has one), where a sequential step gets a directory of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from airflow_openflow.runtime.errors import ExpressionError
from airflow_openflow.runtime.expressions import EvalScope, evaluate, evaluate_predicate
from airflow_openflow.runtime.retry import retry_interval
from airflow_openflow.spec.model import (
    BranchAll,
    BranchOne,
    FlowModule,
    ForloopFlow,
    InputTransform,
    PathFlow,
    StopAfterIf,
    WhileloopFlow,
)

# Imported lazily by step.py (and importing it here at module level would be circular).
RunStep = Callable[..., Any]

#: Threads one task uses at most for a parallel loop or branchall (parallelism can lower it).
_MAX_THREADS = 32

CONTAINER_TYPES = (ForloopFlow, WhileloopFlow, BranchOne, BranchAll, PathFlow)


def is_container(module: FlowModule) -> bool:
    return isinstance(module.value, CONTAINER_TYPES)


@dataclass
class Frame:
    """A (sub-)flow being run: its input, and where ``results.<id>`` look."""

    flow_input: Any
    lookup: Callable[[str], Any]  # results of steps outside this frame
    results: dict[str, Any] = field(default_factory=dict)
    #: where this body sits inside the task's containers ("" for the task's own level), e.g.
    #: ``outer[2]/``: nested loops checkpoint their iterations under it
    place: str = ""

    def result_of(self, step_id: str) -> Any:
        if step_id in self.results:
            return self.results[step_id]
        return self.lookup(step_id)

    def child(self, flow_input: Any, place: str) -> Frame:
        return Frame(flow_input=flow_input, lookup=self.result_of, place=f"{self.place}{place}/")


class _TaskServices:
    """What every step inside a task gets from the task itself: variables, resources, the cache,
    the iteration checkpoints."""

    _base: Any
    _place: str = ""

    @property
    def iteration_store(self) -> Any:
        store = getattr(self._base, "iteration_store", None)
        return _PlacedStore(store, self._place) if store is not None and self._place else store

    def variable(self, path: str) -> Any:
        return self._base.variable(path)

    @property
    def shared_location(self) -> Any:
        """The task's ``./shared`` store (same_worker), used by every step inside it."""
        return getattr(self._base, "shared_location", None)

    def wmill_backend(self, module: FlowModule) -> Any:
        make = getattr(self._base, "wmill_backend", None)
        return make(module) if make is not None else None

    def resource(self, path: str) -> Any:
        return self._base.resource(path)

    def cache_get(self, key: str) -> Any:
        getter = getattr(self._base, "cache_get", None)
        return getter(key) if getter is not None else None

    def cache_set(self, key: str, result: Any, ttl: float) -> None:
        setter = getattr(self._base, "cache_set", None)
        if setter is not None:
            setter(key, result, ttl)


class _FrameContext(_TaskServices):
    """The ``StepRunContext`` of a step inside a body: the frame's input and results, the task's
    flow_env and secrets, and the in-task attempt counter."""

    def __init__(self, base: Any, frame: Frame, previous: Any, *, last_attempt: bool) -> None:
        self._base = base
        self._frame = frame
        self._place = frame.place
        self._previous = previous
        self._last_attempt = last_attempt

    @property
    def flow_input(self) -> Any:
        return self._frame.flow_input

    @property
    def flow_env(self) -> Mapping[str, Any]:
        return self._base.flow_env  # type: ignore[no-any-return]

    @property
    def is_last_attempt(self) -> bool:
        return self._last_attempt

    def previous_result(self) -> Any:
        return self._previous

    def result_of(self, step_id: str) -> Any:
        return self._frame.result_of(step_id)


@dataclass(frozen=True, slots=True)
class BodyOutcome:
    """How a module list (a body, a branch) ended."""

    kind: str  # "completed" | "stopped" | "failed"
    result: Any  # the last result, the stopping step's result, or the error
    stop: Any = None  # the StepOutcome of a stop (plain, skipped or error) when kind == "stopped"


def run_body(modules: list[FlowModule], frame: Frame, base: Any, run_step: RunStep) -> BodyOutcome:
    """Run a module list in order, retrying each step in the task as its ``retry`` says."""
    from airflow_openflow.runtime.step import ENDS_FLOW, OutcomeKind

    previous: Any = frame.flow_input  # the body's args (spec 3.3)
    last_kind = None
    for module in modules:
        outcome = _run_with_retries(module, frame, previous, base, run_step)
        if outcome.kind is OutcomeKind.FAILED:
            return BodyOutcome("failed", outcome.result)
        if outcome.kind is OutcomeKind.ERROR_STOP:
            return BodyOutcome("failed", outcome.result, stop=outcome)
        frame.results[module.id] = outcome.result
        previous = outcome.result
        last_kind = outcome.kind
        if outcome.kind in ENDS_FLOW:
            return BodyOutcome("stopped", outcome.result, stop=outcome)
        if module.sleep is not None:
            from airflow_openflow.runtime.step import sleep_seconds

            # Inside a task there is no worker slot to give back: the wait is a plain sleep.
            time.sleep(sleep_seconds(module.sleep, _FrameContext(base, frame, previous, last_attempt=True)))
    if last_kind is OutcomeKind.CONTINUED_ERROR:
        return BodyOutcome("failed", previous)  # a body ending on an error has failed (spec 5.2)
    return BodyOutcome("completed", previous)


def _run_with_retries(module: FlowModule, frame: Frame, previous: Any, base: Any, run_step: RunStep) -> Any:
    from airflow_openflow.runtime.step import OutcomeKind

    retry = module.retry
    max_retries = retry.max_retries if retry is not None else 0
    for attempt in range(max_retries + 1):
        ctx = _FrameContext(base, frame, previous, last_attempt=attempt == max_retries)
        outcome = run_step(module, ctx)
        if outcome.kind is not OutcomeKind.FAILED or not outcome.retryable or attempt == max_retries:
            return outcome
        assert retry is not None
        delay = retry_interval(retry, attempt) or 0.0
        time.sleep(delay)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# Containers


def run_container(
    module: FlowModule, frame: Frame, previous: Any, base: Any, run_step: RunStep, scope: EvalScope
) -> Any:
    """Run a loop or branch module to its ``StepOutcome``."""
    value = module.value
    if isinstance(value, ForloopFlow):
        return _for_loop(module, value, frame, previous, base, run_step, scope)
    if isinstance(value, WhileloopFlow):
        return _while_loop(module, value, frame, base, run_step, scope)
    if isinstance(value, BranchOne):
        return _branch_one(module, value, frame, previous, base, run_step, scope)
    if isinstance(value, PathFlow):
        return _sub_flow(module, value, base, run_step, scope)
    assert isinstance(value, BranchAll)
    return _branch_all(module, value, frame, previous, base, run_step, scope)


def iteration_input(flow_input: Any, index: int, value: Any) -> dict[str, Any]:
    inputs = dict(flow_input) if isinstance(flow_input, Mapping) else {}
    if "iter" in inputs:
        inputs["iter_parent"] = inputs["iter"]
    inputs["iter"] = {"index": index, "value": value}
    return inputs


def _for_loop(
    module: FlowModule,
    loop: ForloopFlow,
    frame: Frame,
    previous: Any,
    base: Any,
    run_step: RunStep,
    scope: EvalScope,
) -> Any:
    items = loop_items(module, loop, scope)
    if not isinstance(items, list):
        return items  # the flow error of an iterator that failed or is not an array

    def iteration(index: int) -> BodyOutcome:
        inputs = iteration_input(frame.flow_input, index, items[index])
        return run_body(loop.modules, frame.child(inputs, f"{module.id}[{index}]"), base, run_step)

    if loop.parallel:
        try:
            width = loop_width(loop.parallelism, scope, len(items))
        except ExpressionError as exc:
            return _flow_error(module, exc.error_object())
        return loop_outcome(module, loop, _in_parallel(iteration, len(items), width), scope)
    with _Progress(base, module) as progress:
        return loop_outcome(module, loop, _sequential(iteration, len(items), progress), scope)


def _sequential(run: Callable[[int], BodyOutcome], count: int, progress: _Progress) -> Iterable[BodyOutcome]:
    """Iterations one after another, lazily (a break stops them), resuming after checkpointed ones."""
    done = progress.load()[:count]
    yield from done
    for index in range(len(done), count):
        body = run(index)
        done.append(body)
        progress.save(done)
        yield body


def loop_items(module: FlowModule, loop: ForloopFlow, scope: EvalScope) -> Any:
    """The evaluated iterator (a list), or the ``StepOutcome`` failing the flow when the iterator
    throws or is not an array (spec 3.5)."""
    try:
        items = _evaluate_transform(loop.iterator, scope)
    except ExpressionError as exc:
        return _flow_error(module, exc.error_object())
    if not isinstance(items, list):
        return _flow_error(module, iterator_not_array_error(items))
    return items


def loop_outcome(
    module: FlowModule, loop: ForloopFlow, bodies: Iterable[BodyOutcome], scope: EvalScope
) -> Any:
    """The loop's ``StepOutcome`` from its iterations' outcomes, in index order (spec 4.4)."""
    from airflow_openflow.runtime.step import OutcomeKind, StepOutcome

    results: list[Any] = []
    failed = False
    for body in bodies:
        results.append(body.result)
        failed = failed or (body.kind == "failed" and not loop.skip_failures)
        if not loop.parallel and ends_sequential_loop(module, loop, body, scope):
            break
    if failed:
        return StepOutcome(OutcomeKind.FAILED, results, f"for-loop {module.id!r}: an iteration failed")
    return _after_all_iterations(module, results, scope)


def ends_sequential_loop(module: FlowModule, loop: ForloopFlow, body: BodyOutcome, scope: EvalScope) -> bool:
    """Whether a sequential loop ends after this iteration (spec 4.4): its first failure (unless
    ``skip_failures``: the error fills the slot), a stop inside the body (the flow goes on), or the
    loop's ``stop_after_if`` true on the iteration's result. A parallel loop runs every iteration."""
    if body.kind == "failed":
        return not loop.skip_failures
    if body.kind == "stopped":
        return True
    return _break_after_iteration(module.stop_after_if, body.result, scope)


def _while_loop(
    module: FlowModule, loop: WhileloopFlow, frame: Frame, base: Any, run_step: RunStep, scope: EvalScope
) -> Any:
    """Runs until a ``stop_after_if`` (on the loop or a body step) or a failure ends it (spec 4.6).
    Finished iterations are checkpointed, so a task that dies mid-loop resumes after them."""
    from airflow_openflow.runtime.step import OutcomeKind, StepOutcome

    progress = _Progress(base, module)
    with progress:
        done = progress.load()
        results = [body.result for body in done]
        index = len(done)
        while True:
            body = run_body(
                loop.modules,
                frame.child(iteration_input(frame.flow_input, index, index), f"{module.id}[{index}]"),
                base,
                run_step,
            )
            results.append(body.result)
            index += 1
            if body.kind == "failed":
                if loop.skip_failures:
                    progress.save([*done, body])
                    done = [*done, body]
                    continue
                return StepOutcome(
                    OutcomeKind.FAILED, results, f"while-loop {module.id!r}: iteration {index - 1} failed"
                )
            if body.kind == "stopped" or _break_after_iteration(module.stop_after_if, body.result, scope):
                break
            done = [*done, body]
            progress.save(done)
        return _after_all_iterations(module, results, scope)


@dataclass(frozen=True, slots=True)
class _PlacedStore:
    """The task's state store seen from inside a body: keys carry the body's place, so the same
    loop nested in iteration 2 and in iteration 3 of an outer loop keeps two checkpoints."""

    store: Any
    place: str

    def get(self, key: str) -> Any:
        return self.store.get(f"{key}@{self.place}")

    def set(self, key: str, value: Any) -> None:
        self.store.set(f"{key}@{self.place}", value)

    def delete(self, key: str) -> None:
        self.store.delete(f"{key}@{self.place}")


class _Progress:
    """Checkpoints of a loop's finished iterations in the task's state store (Airflow 3.3), for a
    loop that is a task of its own. They let a task that died mid-loop (worker lost, process
    killed) resume after its finished iterations on its next try; every ending the flow sees
    (success, failure, stop) deletes them, so a retry after a failure re-runs the loop from
    iteration 0 as Windmill does, and a cleared task starts afresh."""

    def __init__(self, base: Any, module: FlowModule) -> None:
        self._store = getattr(base, "iteration_store", None)
        self._key = f"openflow_iterations__{module.id}"

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        # Kept when the task is being killed (a BaseException such as termination): that try resumes.
        if self._store is not None and (exc_type is None or issubclass(exc_type, Exception)):
            self._store.delete(self._key)

    def load(self) -> list[BodyOutcome]:
        saved = self._store.get(self._key) if self._store is not None else None
        if not isinstance(saved, list):
            return []
        return [BodyOutcome(kind, result) for kind, result in saved]

    def save(self, bodies: list[BodyOutcome]) -> None:
        if self._store is not None:
            self._store.set(self._key, [[body.kind, body.result] for body in bodies])


def _branch_one(
    module: FlowModule,
    value: BranchOne,
    frame: Frame,
    previous: Any,
    base: Any,
    run_step: RunStep,
    scope: EvalScope,
) -> Any:
    choice = choose_branch(module, value, previous, scope)
    if not isinstance(choice, int):
        return choice  # a predicate failed: the flow fails
    modules = branch_modules(value, choice)
    body_frame = frame.child(frame.flow_input, f"{module.id}[{choice}]")
    body = run_body(modules, body_frame, base, run_step) if modules else None
    return branch_one_outcome(module, choice, body, previous)


def choose_branch(module: FlowModule, value: BranchOne, previous: Any, scope: EvalScope) -> Any:
    """The index of the first branch whose predicate is truthy, -1 for the default; or the
    ``StepOutcome`` failing the flow when a predicate throws (spec 3.5, 4.7)."""
    for index, branch in enumerate(value.branches):
        try:
            if evaluate_predicate(branch.expr or "false", _with(scope, result=previous)):
                return index
        except ExpressionError as exc:
            return _flow_error(module, exc.error_object())
    return -1


def branch_modules(value: BranchOne, choice: int) -> list[FlowModule]:
    return value.default if choice < 0 else value.branches[choice].modules


def branch_one_outcome(module: FlowModule, choice: int, body: BodyOutcome | None, previous: Any) -> Any:
    """The branchone's outcome: the chosen branch's last result (the previous result for an empty
    branch); a failure fails it; a stop inside the branch stops the flow."""
    from airflow_openflow.runtime.step import OutcomeKind, StepOutcome

    label = "default branch" if choice < 0 else f"branch {choice}"
    if body is None:
        return StepOutcome(OutcomeKind.SUCCESS, previous, f"branchone {module.id!r}: {label} (empty)")
    message = f"branchone {module.id!r}: ran the {label}"
    if body.kind == "failed":
        return StepOutcome(OutcomeKind.FAILED, body.result, message)
    if body.kind == "stopped":
        return _propagated_stop(body, body.result, message)  # a stop in a chosen branch stops the flow
    return StepOutcome(OutcomeKind.SUCCESS, body.result, message)


def _branch_all(
    module: FlowModule,
    value: BranchAll,
    frame: Frame,
    previous: Any,
    base: Any,
    run_step: RunStep,
    scope: EvalScope,
) -> Any:
    def run_branch(index: int) -> BodyOutcome:
        body_frame = frame.child(frame.flow_input, f"{module.id}[{index}]")
        return run_body(value.branches[index].modules, body_frame, base, run_step)

    count = len(value.branches)
    if value.parallel:
        bodies: Iterable[BodyOutcome] = _in_parallel(run_branch, count, count)
    else:
        bodies = (run_branch(index) for index in range(count))  # lazily: a failure or stop ends it
    return branch_all_outcome(module, value, bodies, previous)


def ends_sequential_branchall(branch: Any, body: BodyOutcome) -> bool:
    """Whether a sequential branchall ends after this branch (spec 4.8): a failure without
    ``skip_failure``, or a stop (which stops the whole flow)."""
    return body.kind == "stopped" or (body.kind == "failed" and not branch.skip_failure)


def branch_all_outcome(
    module: FlowModule, value: BranchAll, bodies: Iterable[BodyOutcome], previous: Any
) -> Any:
    """The branchall's ``StepOutcome`` from its branches' outcomes, in branch order (spec 4.8)."""
    from airflow_openflow.runtime.step import OutcomeKind, StepOutcome

    results: list[Any] = []
    failed = False
    for branch, body in zip(value.branches, bodies, strict=False):
        # An empty branch passes the previous result through, as an empty branchone does.
        results.append(body.result if branch.modules else previous)
        if body.kind == "failed":
            if branch.skip_failure:
                continue
            failed = True
            if not value.parallel:
                break  # sequential: later branches do not run
            continue
        if body.kind == "stopped" and not value.parallel:
            # A stop inside a sequential branchall stops the whole flow, with the array so far.
            return _propagated_stop(body, results, f"branchall {module.id!r}: stopped in a branch")
    if failed:
        return StepOutcome(OutcomeKind.FAILED, results, f"branchall {module.id!r}: a branch failed")
    return StepOutcome(OutcomeKind.SUCCESS, results)


class _ChildFlowBase(_TaskServices):
    """What a sub-flow's steps get from the task: its own ``flow_env`` (the caller's when it has
    none, spec 1.2), the task's variables and resources."""

    def __init__(self, base: Any, flow_env: Mapping[str, Any]) -> None:
        self._base = base
        self.flow_env = flow_env


def _sub_flow(module: FlowModule, value: PathFlow, base: Any, run_step: RunStep, scope: EvalScope) -> Any:
    """A ``type: flow`` step, run inside this task (spec 4.3): the child gets the evaluated
    arguments as its input (with its schema's defaults), sees none of the caller's results, has its
    own ``flow_env`` and failure module, and an early stop inside it only ends the child."""
    from airflow_openflow.runtime.expressions import evaluate_transforms
    from airflow_openflow.runtime.inputs import flow_input_from
    from airflow_openflow.runtime.step import FlowVerdict, OutcomeKind, StepOutcome, with_failure_module

    child = value.resolved
    if child is None:  # check_supported reports this at load time
        return _flow_error(
            module, {"error": {"name": "SubFlowNotFound", "message": f"sub-flow {value.path!r}"}}
        )
    try:
        args = evaluate_transforms(value.input_transforms, scope)
    except ExpressionError as exc:
        error = exc.error_object()
        return StepOutcome(OutcomeKind.FAILED, error, f"sub-flow {value.path!r}: {error['error']['message']}")
    inputs = flow_input_from(args, child.schema)
    child_base = _ChildFlowBase(base, child.value.flow_env or base.flow_env)
    frame = Frame(flow_input=inputs, lookup=lambda step_id: None)
    label = f"sub-flow {value.path!r}"
    if child.value.skip_expr:
        try:
            skipped = evaluate_predicate(child.value.skip_expr, _with(scope, flow_input=inputs))
        except ExpressionError as exc:
            return _flow_error(module, exc.error_object())
        if skipped:
            return StepOutcome(OutcomeKind.SUCCESS, inputs, f"{label}: skipped by its skip_expr")
    body = run_body(child.value.modules, frame, child_base, run_step)
    if body.kind != "failed":
        return StepOutcome(OutcomeKind.SUCCESS, body.result, f"{label}: {body.kind}")
    handler = child.value.failure_module
    if handler is None:
        return StepOutcome(OutcomeKind.FAILED, body.result, f"{label} failed")
    outcome = _run_with_retries(handler, frame, body.result, child_base, run_step)
    verdict = with_failure_module(
        FlowVerdict("failure", body.result, f"{label} failed"), outcome.kind, outcome.result
    )
    kind = OutcomeKind.SUCCESS if verdict.status == "success" else OutcomeKind.FAILED
    return StepOutcome(kind, verdict.result, verdict.message)


# ---------------------------------------------------------------------------------------------
# Helpers


def _in_parallel(run: Callable[[int], BodyOutcome], count: int, width: int) -> list[BodyOutcome]:
    """Run bodies 0..count-1 at the same time (at most ``width`` at once) in threads of this task,
    so that they really overlap, as Windmill's parallel jobs do; outcomes come back in index order."""
    if count == 0:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(width, count, _MAX_THREADS))) as pool:
        return list(pool.map(run, range(count)))


def loop_width(transform: InputTransform | None, scope: EvalScope, count: int) -> int:
    """``parallelism`` caps how many iterations run at once; absent means all of them."""
    if transform is None:
        return count
    value = _evaluate_transform(transform, scope)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1:
        return int(value)
    return count


def _propagated_stop(body: BodyOutcome, result: Any, message: str) -> Any:
    from airflow_openflow.runtime.step import StepOutcome

    stop = body.stop
    return StepOutcome(stop.kind, result, f"{message}: {stop.message}", retryable=False)


def _break_after_iteration(stop: StopAfterIf | None, result: Any, scope: EvalScope) -> bool:
    """``stop_after_if`` on a loop module is its break condition, tested after each iteration."""
    if stop is None:
        return False
    return evaluate_predicate(stop.expr, _with(scope, result=result, previous_result=result))


def _after_all_iterations(module: FlowModule, results: list[Any], scope: EvalScope) -> Any:
    """``stop_after_all_iters_if``: evaluated once on the whole array; true stops the flow."""
    from airflow_openflow.runtime.step import OutcomeKind, StepOutcome, stop_outcome

    stop = module.stop_after_all_iters_if
    if stop is None:
        return StepOutcome(OutcomeKind.SUCCESS, results)
    try:
        stopped = evaluate_predicate(stop.expr, _with(scope, result=results, previous_result=results))
    except ExpressionError as exc:
        return _flow_error(module, exc.error_object())
    if not stopped:
        return StepOutcome(OutcomeKind.SUCCESS, results)
    return stop_outcome(stop, results)


def _evaluate_transform(transform: InputTransform, scope: EvalScope) -> Any:
    if transform.kind == "static":
        return transform.value
    return evaluate(transform.expr or "", scope)


def _with(scope: EvalScope, **changes: Any) -> EvalScope:
    import dataclasses

    return dataclasses.replace(scope, **changes)


def _flow_error(module: FlowModule, error: dict[str, Any]) -> Any:
    """An iterator or predicate that cannot be evaluated fails the flow; a retry cannot help."""
    from airflow_openflow.runtime.step import OutcomeKind, StepOutcome

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
